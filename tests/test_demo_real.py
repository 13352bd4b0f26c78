"""The demo day as the real default model sees it, and a failed demo run leaving nothing behind.

The real-model test converts the asleep 0.5.0 bundle (the default model's weights, from the PyPI
sdist: marked ``pypi``) and runs ``harnet predict`` on a shortened demo script built from the
same generators as the 26-h demo (harnet.synth). On the full 26-h demo (2026-12-01, AMD EPYC,
2 shared cores) the HMM-smoothed labels were: off-wrist 100% non-wear, rest 100% sleep, sitting
100% sedentary, walking 100% moderate-vigorous.
"""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest

import harnet.synth
from harnet.synth import EXPECTED_LABELS, write_scripted_cwa
from harnet_cli.main import main

# 100 min off the wrist (non-wear needs 90 min still), then each activity long enough for the HMM
SCRIPT = (("offwrist", 1.7), ("rest", 1.0), ("sit", 0.75), ("walk", 0.25), ("sit", 0.5))


@pytest.fixture(scope="module")
def asleep_model(tmp_path_factory):
    from _pypi import asleep_bundle

    model = tmp_path_factory.mktemp("asleep") / "m"
    assert main(["convert", str(asleep_bundle()), "--out", str(model), "--name", "harnet30-c24-walmsley"]) == 0
    return model


@pytest.mark.pypi
@pytest.mark.slow
def test_real_default_model_labels_the_demo_as_scripted(tmp_path, asleep_model):
    cwa = write_scripted_cwa(tmp_path / "demo.cwa", "2024-01-01 22:00:00", SCRIPT, seed=3)
    out = tmp_path / "summary.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", str(cwa), "--model", str(asleep_model), "--out", str(out), "-q"])
    assert rc == 0, err.getvalue()
    ts = pd.read_parquet(tmp_path / "summary-timeseries.parquet")
    t = pd.to_datetime(ts["time"])
    label = ts["label"].astype(object).where(~ts["nonwear"], "non-wear")
    start, off, shares = pd.Timestamp("2024-01-01 22:00:00"), 0.0, []
    for kind, hours in SCRIPT:
        sel = (t >= start + pd.Timedelta(hours=off)) & (t < start + pd.Timedelta(hours=off + hours))
        share = float(label[sel].isin(EXPECTED_LABELS[kind]).mean())
        shares.append((kind, round(share, 2)))
        off += hours
    # the first 90 min off the wrist are needed to call it non-wear; the rest must be as scripted
    assert all(s >= 0.9 for _, s in shares), shares


def test_failed_demo_leaves_no_demo_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(harnet.synth, "DEMO_PATTERN", (("offwrist", 0.05), ("walk", 0.05)))
    monkeypatch.setattr(harnet.synth.write_scripted_cwa, "__defaults__", ("2024-01-01 22:00:00", harnet.synth.DEMO_PATTERN))
    monkeypatch.setenv("HARNET_OFFLINE", "1")  # the default model's weights cannot be fetched
    out = tmp_path / "demo" / "summary.csv"
    assert main(["predict", "--demo", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "harnet download harnet30-c24-walmsley" in err
    assert list((tmp_path / "demo").iterdir()) == []


def test_demo_written_halfway_is_removed(tmp_path, monkeypatch):
    def broken(path, *a, **k):
        path.write_bytes(b"MD" + b"\0" * 1000)  # a partial recording, then a failure
        raise KeyboardInterrupt

    monkeypatch.setattr(harnet.synth, "write_scripted_cwa", broken)
    out = tmp_path / "demo" / "summary.csv"
    assert main(["predict", "--demo", "--out", str(out)]) == 130
    assert list((tmp_path / "demo").iterdir()) == []
