"""Policy fixtures: a tiny small-vocabulary model with scaled-up random weights, loaded once, and a picture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from deepmmsearch.models.build import init_model, load_model

REPO = Path(__file__).resolve().parents[2]
IMAGE_PATH = REPO / "examples" / "lighthouse.png"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and far faster than on two when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny small-vocabulary model whose weights are scaled up, so that different prompts give different text."""
    out = init_model(tmp_path_factory.mktemp("hf") / "tiny", vocab="small", size="tiny")
    model, _ = load_model(out, device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, 0.3)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def loaded(model_dir: Path):
    return load_model(model_dir, device="cpu")


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.open(IMAGE_PATH).convert("RGB")
