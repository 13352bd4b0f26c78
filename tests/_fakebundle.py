"""A published-like classifier bundle and its registry entry, made at test time (no downloads).

The bundle is laid out as asleep's ``ssl.joblib.lzma`` (a ``models.SleepWindowSSL`` holding a
state dict and a ``stepcount.hmm_utils.HMMSmoother``), pickled with stand-in classes under
those names, with a small harnet5 network so that converting and exporting it take seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sys
import types
from pathlib import Path
from typing import Iterator

import numpy as np

LABELS = ("light", "moderate-vigorous", "sedentary", "sleep")


@contextlib.contextmanager
def _stand_in_classes() -> Iterator[tuple[type, type]]:
    added = []
    for mod in ("models", "stepcount", "stepcount.hmm_utils"):
        if mod not in sys.modules:
            sys.modules[mod] = types.ModuleType(mod)
            added.append(mod)
    bundle = type("SleepWindowSSL", (), {"__module__": "models", "__qualname__": "SleepWindowSSL"})
    hmm = type("HMMSmoother", (), {"__module__": "stepcount.hmm_utils", "__qualname__": "HMMSmoother"})
    old = getattr(sys.modules["models"], "SleepWindowSSL", None), getattr(sys.modules["stepcount.hmm_utils"], "HMMSmoother", None)
    sys.modules["models"].SleepWindowSSL = bundle
    sys.modules["stepcount.hmm_utils"].HMMSmoother = hmm
    try:
        yield bundle, hmm
    finally:
        for mod in added:
            del sys.modules[mod]
        if not added:
            sys.modules["models"].SleepWindowSSL, sys.modules["stepcount.hmm_utils"].HMMSmoother = old


def write_bundle(path: Path, seed: int = 0) -> bytes:
    """Write an asleep-like harnet5 classifier bundle (4 classes, with an HMM); return its bytes."""
    import joblib
    import torch

    from harnet.model import build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sd = build("harnet5", num_classes=len(LABELS)).state_dict()
    rng = np.random.default_rng(seed)
    c = len(LABELS)
    e = rng.random((c, c)) + np.eye(c) * 3
    t = rng.random((c, c)) + np.eye(c) * 20
    with _stand_in_classes() as (bundle_cls, hmm_cls):
        hmm = hmm_cls()
        hmm.__dict__.update(use_hmmlearn=False, startprob=np.full(c, 1.0 / c), emissionprob=(e / e.sum(1, keepdims=True)),
                            transmat=t / t.sum(1, keepdims=True), labels=np.arange(c), n_iter=100)
        b = bundle_cls()
        b.__dict__.update(device="cpu", repo_tag="v1.0.0", batch_size=512, state_dict=sd, hmms=hmm)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(b, path, compress=0)
    return path.read_bytes()


def entry_for(url: str, data: bytes, name: str = "tiny-classifier"):
    """A registry entry (like the default classifier's) for ``data`` served at ``url``."""
    from harnet import registry

    base = registry.get(registry.DEFAULT_CLASSIFIER)
    return dataclasses.replace(
        base, name=name, arch="harnet5", window_sec=5, labels=LABELS, urls=(url,), filename="ssl.joblib",
        checksum_algo="sha256", checksum=hashlib.sha256(data).hexdigest(), size=len(data), format="asleep-bundle",
    )
