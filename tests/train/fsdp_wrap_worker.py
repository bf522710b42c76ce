"""Under `accelerate launch` with an FSDP config: which module classes its plugin wraps in each model given.
Argv: MODEL_DIR... Prints ``WRAP {json}`` a model."""

from __future__ import annotations

import json
import sys

from accelerate import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
from transformers import AutoModelForImageTextToText


def main() -> None:
    plugin = FullyShardedDataParallelPlugin()  # from the launcher's FSDP_* environment
    for path in sys.argv[1:]:
        model = AutoModelForImageTextToText.from_pretrained(path)
        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        wrapped = sorted({type(module).__name__ for module in model.modules() if policy(module)})
        print("WRAP " + json.dumps({"model_class": type(model).__name__, "wrapped": wrapped}), flush=True)


if __name__ == "__main__":
    main()
