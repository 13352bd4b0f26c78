"""Memory of the streaming pipeline (issue 15) does not grow with the recording: tracemalloc peaks of a
1-day and a 4-day generated recording, read in small blocks, within 10 %."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from harnet.pipeline import PredictOptions, predict_recording, read_recording
from harnet.signal.stream import StreamedRecording


# ---- memory stays flat as the recording grows ----------------------------------------------------


class _Movement:
    name = "test-movement"

    def __init__(self, n):
        self.n = n

    def predict_proba(self, x):
        sd = np.linalg.norm(x, axis=1).std(axis=1)
        p = np.full((len(x), self.n), 0.1, dtype=np.float32)
        p[np.arange(len(x)), np.digitize(sd, [0.01, 0.05])] = 0.8
        return p


def _peak(path: Path, pred) -> int:
    """Peak traced memory (bytes) of reading and predicting ``path``, in blocks of 256 file blocks
    (40 min at 12.5 Hz, small beside the 6-h chunks of pass 2)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        rec = read_recording(path, PredictOptions(), block_blocks=256)
        assert isinstance(rec, StreamedRecording)
        predict_recording(rec, PredictOptions(), predictor=pred)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_as_the_recording_grows(tmp_path):
    from _tinymodels import make_model_dir

    from harnet.predictor import Predictor
    from harnet.synth import write_scripted_cwa

    labels = ("sleep", "sedentary", "light")
    mdir = make_model_dir(tmp_path / "m", "harnet30", labels=labels)
    pred = Predictor(model_dir=mdir, backend_obj=_Movement(len(labels)), hmm=False)
    day = [("rest", 8.0), ("sit", 7.0), ("walk", 1.0), ("sit", 6.0), ("offwrist", 2.0)]
    fs = 12.5  # a CWA rate; few samples keep the test fast
    warm = write_scripted_cwa(tmp_path / "w.cwa", "2024-01-01 00:00:00", [("sit", 1.0), ("walk", 1.0)], fs=fs)
    one = write_scripted_cwa(tmp_path / "d1.cwa", "2024-01-01 00:00:00", day, fs=fs, days=1)
    four = write_scripted_cwa(tmp_path / "d4.cwa", "2024-01-01 00:00:00", day, fs=fs, days=4)
    _peak(warm, pred)  # first-time imports (pandas, pyarrow, the measures) are not the recording's
    p1, p4 = _peak(one, pred), _peak(four, pred)
    whole = 4 * 86_400 * fs * 20  # the 4-day recording held whole: 20 bytes a sample
    assert p4 < whole, (p1, p4)
    assert p4 <= 1.10 * p1, f"peak traced memory {p1 / 1e6:.1f} MB for 1 day, {p4 / 1e6:.1f} MB for 4 days"
