"""harnet: self-supervised activity-recognition networks for wrist-worn accelerometers.

Importing this package is cheap: torch, onnxruntime and click are imported only when a
function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute", resolved on first use
_LAZY = {
    "load": "harnet.loading:load",
    "list_models": "harnet.registry:list_models",
    "build": "harnet.model:build",
    "Harnet": "harnet.model:Harnet",
    "HarnetConfig": "harnet.model:HarnetConfig",
    "HMM": "harnet.hmm:HMM",
    "HarnetError": "harnet.errors:HarnetError",
    "ChecksumError": "harnet.errors:ChecksumError",
    "ModelError": "harnet.errors:ModelError",
    "InputError": "harnet.errors:InputError",
    "download": "harnet.hub:download",
    "convert": "harnet.convert:convert",
    "save_model_dir": "harnet.modeldir:save_model_dir",
    "read_device": "harnet.io:read_device",
    "predict_file": "harnet.pipeline:predict_file",
    "summarize": "harnet.measures.activity:summarize",
    "export_onnx": "harnet.onnx.export:export_onnx",
    "predict_many": "harnet.batch:predict_many",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'harnet' has no attribute {name!r}")
    mod, attr = target.split(":")
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
