"""Predictor.classify's ``on_chunk`` hook: a second consumer sees every kept window once, the same
windows the network saw, in order (issue 16's steps run on these windows, not on a second read)."""

from __future__ import annotations

import numpy as np

from harnet.io.recording import Recording
from harnet.pipeline import PredictOptions
from harnet.predictor import Predictor
from harnet.synth import scripted_xyz


class _Backend:
    name = "test-const"

    def __init__(self, n):
        self.n = n
        self.seen = []

    def predict_proba(self, x):
        self.seen.append(x.copy())
        return np.full((len(x), self.n), 1.0 / self.n, dtype=np.float32)


def test_on_chunk_sees_every_kept_window_once(tmp_path):
    from _tinymodels import make_model_dir

    labels = ("a", "b")
    mdir = make_model_dir(tmp_path / "m", "harnet30", labels=labels)
    xyz = scripted_xyz([("sit", 1.0), ("walk", 1.0), ("offwrist", 2.0)], fs=25.0)
    t = np.datetime64("2024-01-01T10:00:07", "ns") + (np.arange(len(xyz)) * 4e7).astype("timedelta64[ns]")
    be = _Backend(len(labels))
    pred = Predictor(model_dir=mdir, backend_obj=be, hmm=False)
    got = []
    opts = PredictOptions(start="2024-01-01T10:30:00")
    lo = np.datetime64("2024-01-01T10:30:00", "ns").astype(np.int64)
    res = pred.classify(Recording(t, xyz, {}), opts, start_ns=int(lo), on_chunk=got.append)
    starts = np.concatenate([c.starts for c in got])
    assert np.array_equal(starts, res.starts)
    assert starts[0] == np.datetime64("2024-01-01T10:30:00", "ns")
    valid = np.concatenate([c.valid for c in got])
    assert np.array_equal(valid, res.valid) and valid.any() and not valid.all()
    X = np.concatenate([c.X[c.valid] for c in got])
    assert np.array_equal(X, np.concatenate(be.seen))
