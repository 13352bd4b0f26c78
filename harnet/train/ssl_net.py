"""The pre-training network: the feature extractor with one ``Linear(F, 2)`` head per pretext task
(see :mod:`harnet.train.ssl`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ModelError
from .ssl_data import HEADS_FILE, PretrainConfig

log = logging.getLogger("harnet")

# ---- network -------------------------------------------------------------------------------

def torch_module():
    import torch

    return torch


def make_ssl_net(feature_extractor: Any, tasks: Sequence[str], in_features: int) -> Any:
    """Feature extractor plus one ``<task>_h.linear1 = Linear(F, 2)`` head per task.

    The state-dict names (``feature_extractor.*``, ``aot_h.linear1.weight``, ...) match the
    published pre-training checkpoints, so their heads can be loaded to continue pre-training.
    """
    torch = torch_module()
    from torch import nn

    class PretextHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear1 = nn.Linear(in_features, 2)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.linear1(z)

    class SSLNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.feature_extractor = feature_extractor
            self.tasks = tuple(tasks)
            for t in self.tasks:
                self.add_module(f"{t}_h", PretextHead())

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            z = self.feature_extractor(x).flatten(1)
            return [getattr(self, f"{t}_h")(z) for t in self.tasks]

    return SSLNet()


def init_ssl_net(
    cfg: PretrainConfig, resume_from: str | Path | None = None, progress: Callable[[str], None] = log.info
) -> tuple[Any, Any]:
    """``(backbone, net)``: a :class:`harnet.model.Harnet` and the pre-training network that
    shares its feature extractor. Random weights are drawn from ``cfg.seed`` (without touching
    torch's global generator); ``resume_from`` loads a backbone directory and its pretext heads
    when it has them."""
    torch = torch_module()
    from ..model import build
    from ..modeldir import load_model_dir

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        backbone = build(cfg.arch) if resume_from is None else load_model_dir(resume_from)
        net = make_ssl_net(backbone.feature_extractor, cfg.tasks, backbone.feature_extractor.out_features)
    if resume_from is not None and (Path(resume_from) / HEADS_FILE).is_file():
        load_heads(net, Path(resume_from) / HEADS_FILE, progress)
    return backbone, net


def heads_state(net: Any) -> dict[str, Any]:
    return {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items() if not k.startswith("feature_extractor.")}


def load_heads(net: Any, path: Path, progress: Callable[[str], None]) -> list[str]:
    """Load the heads in ``path`` that ``net`` has (others, e.g. ``scale_h``, are ignored)."""
    from safetensors.torch import load_file

    sd = load_file(str(path))
    own = net.state_dict()
    use = {k: v for k, v in sd.items() if k in own and not k.startswith("feature_extractor.")}
    for k, v in use.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelError(f"{path}: head {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    net.load_state_dict({**own, **use})
    loaded = sorted({k.split("_h.")[0] for k in use})
    missing = [t for t in net.tasks if t not in loaded]
    if missing:
        progress(f"pretext heads not in {path.name}, started fresh: {', '.join(missing)}")
    return loaded
