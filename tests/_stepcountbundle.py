"""A stepcount 3.20.0-format bundle made at test time (no downloads, nothing of stepcount run).

Laid out as stepcount's ``ssl-20230208.joblib.lzma`` (see harnet/convert/stepcount.py): a
``stepcount.models.StepCounter`` holding a ``stepcount.models.WalkDetectorSSL`` (a harnet10 state
dict with two outputs and a ``stepcount.hmm_utils.HMMSmoother``), pickled by joblib with lzma
compression. The classes are stand-ins registered in ``sys.modules`` only while pickling. The
network's large tensors are made lzma-friendly (signs / 8) so that writing takes seconds.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PEAKS = {"distance": 0.3133, "prominence": 0.2417}  # odd values: a test sees they are copied, not defaulted
STEPTOL = 4
LOWPASS_HZ = 5


@contextlib.contextmanager
def stand_in_classes() -> Iterator[dict[str, type]]:
    """``stepcount.models.StepCounter``/``WalkDetectorSSL`` and ``stepcount.hmm_utils.HMMSmoother``
    as plain classes under those names, removed again afterwards."""
    names = {"StepCounter": "stepcount.models", "WalkDetectorSSL": "stepcount.models",
             "WalkDetectorRF": "stepcount.models", "HMMSmoother": "stepcount.hmm_utils"}
    added, replaced = [], []
    for mod in ("stepcount", "stepcount.models", "stepcount.hmm_utils"):
        if mod not in sys.modules:
            sys.modules[mod] = types.ModuleType(mod)
            added.append(mod)
    classes = {}
    for cls, mod in names.items():
        replaced.append((mod, cls, getattr(sys.modules[mod], cls, None)))
        classes[cls] = type(cls, (), {"__module__": mod, "__qualname__": cls})
        setattr(sys.modules[mod], cls, classes[cls])
    try:
        yield classes
    finally:
        for mod, cls, old in replaced:
            if mod in sys.modules:
                if old is None:
                    delattr(sys.modules[mod], cls)
                else:
                    setattr(sys.modules[mod], cls, old)
        for mod in added:
            sys.modules.pop(mod, None)


def obj(cls: type, **attrs: Any) -> Any:
    o = cls()
    o.__dict__.update(attrs)
    return o


def state_dict(seed: int = 0, n_out: int = 2) -> "collections.OrderedDict[str, Any]":
    """A harnet10 state dict with ``n_out`` outputs; big tensors lzma-friendly."""
    import torch

    from harnet.model import build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sd = build("harnet10", num_classes=n_out).state_dict()
    return collections.OrderedDict(
        (k, v.sign() / 8 if v.is_floating_point() and v.numel() > 4096 else v.clone()) for k, v in sd.items()
    )


def hmm_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prior = rng.random(2) + 0.5
    e = rng.random((2, 2)) + np.eye(2) * 3
    t = rng.random((2, 2)) + np.eye(2) * 20
    return prior / prior.sum(), e / e.sum(1, keepdims=True), t / t.sum(1, keepdims=True)


def bundle_object(classes: dict[str, type], *, sd: Any = None, seed: int = 0, peaks: Any = PEAKS,
                  steptol: Any = STEPTOL, counter_extra: dict | None = None, wd_extra: dict | None = None,
                  hmm_extra: dict | None = None, rf_detector: bool = False) -> Any:
    """The StepCounter object (``classes`` from :func:`stand_in_classes`). ``rf_detector``: its
    walk detector is a ``WalkDetectorRF`` (stepcount's random-forest model, which harnet does not read)."""
    prior, emission, transmat = hmm_arrays(seed)
    hmm = obj(classes["HMMSmoother"], **{
        **dict(use_hmmlearn=False, n_components=None, train_test_split=False, ste="st", startprob=prior,
               emissionprob=emission, transmat=transmat, n_iter=100, n_trials=100, random_state=123,
               stratify_groups=True, labels=np.array([0, 1]), hmm=None, score=None),
        **(hmm_extra or {})})
    wd = obj(classes["WalkDetectorSSL"], **{
        **dict(device="cpu", weights_path="state_dict.pt", repo_tag="v1.0.0", ssl_repo_path=None, batch_size=100,
               state_dict=state_dict(seed) if sd is None else sd, model=None, n_jobs=1, verbose=False, hmms=hmm),
        **(wd_extra or {})})
    if rf_detector:
        wd = obj(classes["WalkDetectorRF"], sample_rate=30, hmms=hmm, thresh=0.5)
    return obj(classes["StepCounter"], **{
        **dict(window_sec=10, sample_rate=30, steptol=steptol, pnr=1.0, lowpass_hz=LOWPASS_HZ, cv=5, n_jobs=1,
               verbose=False, wd_params={"device": "cpu", "batch_size": 100, "verbose": False}, wd=wd,
               window_len=300, find_peaks_params=peaks, cv_scores=None, cv_results={}),
        **(counter_extra or {})})


def write_stepcount_bundle(path: Path, *, compress: Any = ("lzma", 3), **kw: Any) -> Path:
    """Write a stepcount-format bundle (joblib, lzma 'alone' format, as stepcount's own files;
    ``compress=0`` writes it uncompressed, which is quicker for a harnet10 network)."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    with stand_in_classes() as classes:
        joblib.dump(bundle_object(classes, **kw), path, compress=compress, protocol=4)
    return path
