"""One process of tests/train/test_zero3.py's load check: the training code's set-up order (arguments, processes,
then the model), and how a weight of the loaded model is held. Argv: MODEL_DIR OUT_DIR. Prints ``PROBE {json}``."""

from __future__ import annotations

import json
import sys

from deepmmsearch.config import load_config
from deepmmsearch.train.common import trainable_model, world_size
from deepmmsearch.train.config import TrainSFTConfig, sft_args
from deepmmsearch.train.distributed import start_processes


def main() -> None:
    config = load_config(TrainSFTConfig, None, {"model": sys.argv[1], "out": sys.argv[2], "global_batch_size": 4})
    args = sft_args(config, True, False, world_size())  # alive while models load: it holds the DeepSpeed config
    start_processes(args)
    model, _ = trainable_model(sys.argv[1], "float32", config.lora)
    weight = model.get_base_model().model.language_model.layers[0].mlp.up_proj.base_layer.weight
    print("PROBE " + json.dumps({"partitioned": hasattr(weight, "ds_id"), "local": list(weight.shape)}), flush=True)


if __name__ == "__main__":
    main()
