"""Grounding DINO and OWLv2 through transformers' zero-shot detection classes, on tiny random-weight models
built from configs and saved to a folder (no weights ship anywhere): they load through the real Auto classes,
run, and return a box inside the image or None."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from PIL import Image

from deepmmsearch.errors import ToolError
from deepmmsearch.tools import GROUNDERS, ToolsConfig, _pick
from deepmmsearch.tools.detectors import ZeroShotDetectorGrounder

IMAGE = Image.new("RGB", (120, 80), "white")


@pytest.fixture(scope="module")
def grounding_dino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SwinConfig,
    )

    out = tmp_path_factory.mktemp("grounding-dino")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "red", "ball", "on", "left"]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}),
        tokenizer=tokenizer,
    )
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=2, image_size=64,
            out_features=["stage2", "stage3", "stage4"],
        ),
        text_config=BertConfig(
            vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64,
        ),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, max_text_len=32, encoder_n_points=1,
        decoder_n_points=1,
    )  # fmt: skip
    torch.manual_seed(0)  # random weights, but the same ones every run
    GroundingDinoForObjectDetection(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def owlv2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    out = tmp_path_factory.mktemp("owlv2")
    # OWL masks out a query whose first token id is 0, so the start token must not be id 0.
    words = ["!", "the</w>", "red</w>", "ball</w>", "<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={w: i for i, w in enumerate(words)}, merges=[])
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    config = Owlv2Config(
        text_config={
            "vocab_size": len(words), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 4, "eos_token_id": 5,
            "pad_token_id": 5,
        },
        vision_config={
            "image_size": 32, "patch_size": 16, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    Owlv2ForObjectDetection(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.mark.parametrize("family", ["grounding-dino", "owlv2"])
def test_tiny_detector_loads_runs_and_returns_a_box_or_none(
    family: str, grounding_dino_dir: Path, owlv2_dir: Path
) -> None:
    folder = grounding_dino_dir if family == "grounding-dino" else owlv2_dir
    grounder = _pick(GROUNDERS, "grounding", family, ToolsConfig(grounder=family, grounder_model=str(folder)))
    assert isinstance(grounder, ZeroShotDetectorGrounder) and grounder.name == family
    box = asyncio.run(grounder.ground(IMAGE, "the red ball"))
    assert box is None or (0 <= box.x0 < box.x1 <= IMAGE.width and 0 <= box.y0 < box.y1 <= IMAGE.height)
    # With a threshold no score can pass, nothing is found: None, not an error.
    strict = ZeroShotDetectorGrounder(str(folder), family, threshold=1.01, text_threshold=1.01)
    assert asyncio.run(strict.ground(IMAGE, "the red ball")) is None
    # With no threshold every query passes, yet random box heads may put every box outside the image: None.
    loose = ZeroShotDetectorGrounder(str(folder), family, threshold=0.0, text_threshold=0.0)
    box = asyncio.run(loose.ground(IMAGE, "the red ball"))
    assert box is None or (0 <= box.x0 < box.x1 <= IMAGE.width and 0 <= box.y0 < box.y1 <= IMAGE.height)


def test_the_best_box_with_area_inside_the_image_wins(owlv2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grounder = ZeroShotDetectorGrounder(str(owlv2_dir), "owlv2")
    processor, _ = grounder.load()
    detections = {
        "scores": torch.tensor([0.3, 0.9, 0.6, 0.5]),
        "boxes": torch.tensor([[1.0, 1, 20, 20], [-30, -30, -5, -5], [10.2, 5.7, 150, 60.4], [0, 0, 5, 5]]),
    }
    monkeypatch.setattr(processor, "post_process_grounded_object_detection", lambda *a, **k: [detections])
    box = grounder.ground_sync(IMAGE, "The  Red Ball")
    assert box is not None and box.as_list() == [10, 5, 120, 60] and box.label == "the red ball"  # clipped to 120
    detections["boxes"], detections["scores"] = torch.zeros((0, 4)), torch.zeros(0)
    assert grounder.ground_sync(IMAGE, "the red ball") is None


def test_a_missing_model_is_a_tool_error_that_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a path is never looked up on the hub; this makes sure of it
    grounder = ZeroShotDetectorGrounder(str(tmp_path / "no-model"), "owlv2")
    with pytest.raises(ToolError, match="no-model"):
        asyncio.run(grounder.ground(IMAGE, "the red ball"))


class ThreadDevices:
    """CUDA's current device as the CUDA runtime keeps it: per thread, and 0 in a thread that never set it."""

    def __init__(self) -> None:
        import threading

        self.local = threading.local()

    def set_device(self, device: int) -> None:
        self.local.device = device

    def current_device(self) -> int:
        return getattr(self.local, "device", 0)


def test_the_detector_loads_on_the_callers_gpu_from_its_worker_thread(grounding_dino_dir, monkeypatch):
    from transformers import GroundingDinoForObjectDetection

    devices = ThreadDevices()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", devices.current_device)
    monkeypatch.setattr(torch.cuda, "set_device", devices.set_device)
    moved: list[str] = []

    def to(model, device):  # record where the model goes; it stays on the CPU that runs the test
        moved.append(device)
        return model

    monkeypatch.setattr(GroundingDinoForObjectDetection, "to", to)
    devices.set_device(3)  # this process's rank runs on GPU 3, as Accelerate sets it in the main thread
    grounder = ZeroShotDetectorGrounder(str(grounding_dino_dir), "grounding-dino", threshold=0.0, text_threshold=0.0)
    asyncio.run(grounder.ground(IMAGE, "the red ball"))
    assert moved == ["cuda:3"]
    # A plain worker thread would have put it on GPU 0.
    assert asyncio.run(asyncio.to_thread(devices.current_device)) == 0
