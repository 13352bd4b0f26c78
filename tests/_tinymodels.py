"""Model directories made at test time for the backend and export tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = ("light", "moderate-vigorous", "sedentary", "sleep")
T_OF = {"harnet5": 150, "harnet10": 300, "harnet30": 900}


def make_model_dir(path: Path, arch: str = "harnet10", *, seed: int = 0, negative_bn: bool = False,
                   labels: tuple[str, ...] = LABELS) -> Path:
    """A classifier directory whose batch norms carry non-trivial statistics.

    ``negative_bn=True`` gives some channels a negative BN scale, which the exporter cannot fold
    (it must keep a BatchNormalization node there).
    """
    import torch

    from harnet.model import build
    from harnet.modeldir import save_model_dir

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the weights' own init draws from the global RNG
        torch.manual_seed(seed)
        m = build(arch, labels=labels).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                w = torch.rand(c, generator=g) + 0.5
                if negative_bn:
                    w[::7] *= -1
                mod.weight.copy_(w)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.2)
    return save_model_dir(m, path, provenance={"source": "test", "licence": "BSD-3-Clause"},
                          description=f"test {arch}")


def make_model30_with_hmm(path: Path, labels: tuple[str, ...] = ("rest", "active", "walk")) -> Path:
    """The harnet30 classifier of the ``model30_dir`` fixture and the goldens: seed 0, with an HMM
    that keeps a label with probability 0.9 and emits it with 0.8."""
    from harnet.hmm import HMM

    d = make_model_dir(path, "harnet30", labels=labels)
    HMM(
        prior=np.full(3, 1 / 3),
        emission=np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]),
        transition=np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]),
        labels=labels,
    ).save(d / "hmm.json")
    return d


def windows(n: int, T: int, seed: int = 0) -> np.ndarray:
    """Gravity-like windows in g: a random unit vector per window plus movement."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, 3, 1))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    t = np.arange(T) / 30.0
    f = rng.uniform(0.5, 3.0, (n, 1, 1))
    move = rng.uniform(0, 0.5, (n, 3, 1)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6, (n, 3, 1)))
    return (g + move + rng.standard_normal((n, 3, T)) * 0.01).astype(np.float32)
