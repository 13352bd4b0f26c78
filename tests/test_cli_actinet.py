"""actinet users' spellings of `harnet predict` options (cli/predict_opts.py), each against
harnet's own spelling of the same setting."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from harnet.io import write_cwa
from harnet_cli.main import main
from harnet_cli.predict_opts import duration_hours

from _devicefiles import wrist_like as moving

FS = 25  # the rate wrist_like draws at by default


@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    """5 minutes on 10 January, 5 + 10 on the 11th, 10 on the 12th (three sessions in one .cwa)."""
    p = tmp_path_factory.mktemp("rec") / "three-days.cwa"
    write_cwa(p, "2024-01-10 23:55:00", moving(FS * 600, 1), fs=FS)
    write_cwa(p, "2024-01-11 12:00:00", moving(FS * 600, 2), fs=FS, append=True, session_id=2)
    write_cwa(p, "2024-01-12 00:05:00", moving(FS * 600, 3), fs=FS, append=True, session_id=3)
    return p


def predict(args, model, cwd=None) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["predict", *args, "--model", str(model), "-q"])
    return rc, err.getvalue()


def dates(csv) -> list[str]:
    return list(pd.read_csv(csv)["Date"].astype(str))


@pytest.mark.parametrize("which,harnet_flags,expect", [
    ("first", ["--exclude-first-day"], ["2024-01-11", "2024-01-12"]),
    ("last", ["--exclude-last-day"], ["2024-01-10", "2024-01-11"]),
    ("both", ["--exclude-first-day", "--exclude-last-day"], ["2024-01-11"]),
])
def test_exclude_first_last(three_days, model30_dir, tmp_path, which, harnet_flags, expect):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert predict([str(three_days), "--out", str(a), "--exclude-first-last", which], model30_dir)[0] == 0
    assert predict([str(three_days), "--out", str(b), *harnet_flags], model30_dir)[0] == 0
    assert dates(a) == expect
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("text,hours", [("12H", 12), ("720min", 12), ("0.5D", 12), ("90m", 1.5), ("30min", 0.5), ("1h", 1)])
def test_duration_spellings(text, hours):
    assert duration_hours(text) == pytest.approx(hours)


def test_exclude_wear_below(three_days, model30_dir, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert predict([str(three_days), "--out", str(a), "--exclude-wear-below", "0.2H"], model30_dir)[0] == 0
    assert predict([str(three_days), "--out", str(b), "--min-wear-per-day", "0.2"], model30_dir)[0] == 0
    assert a.read_bytes() == b.read_bytes()
    daily = pd.read_csv(a)
    # 11 January holds 15 worn minutes (>= 12 min), the other two days less: only it is valid
    assert list(daily["DayValid"].astype(bool)) == [False, True, False]
    info = json.loads(a.with_name("a-info.json").read_text())
    assert info["options"]["min_wear_per_day"] == pytest.approx(0.2)


@pytest.mark.parametrize("bad,expect", [("12", "not a duration"), ("12 parsecs", "not a duration"), ("2D", "at most 25")])
def test_exclude_wear_below_refuses_bad_values(three_days, model30_dir, tmp_path, bad, expect):
    rc, err = predict([str(three_days), "--out", str(tmp_path / "a.csv"), "--exclude-wear-below", bad], model30_dir)
    assert rc == 2 and expect in err and "--exclude-wear-below" in err
    rc, err = predict([str(three_days), "--out", str(tmp_path / "a.csv"), "--exclude-wear-below", "12H",
                       "--min-wear-per-day", "5"], model30_dir)
    assert rc == 2 and "disagree" in err


def test_outdir_short_option_and_actinet_default(three_days, model30_dir, tmp_path, monkeypatch):
    assert predict([str(three_days), "-o", str(tmp_path / "res")], model30_dir)[0] == 0
    assert (tmp_path / "res" / "three-days" / "summary.csv").is_file()
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["predict", str(three_days), "--model", str(model30_dir)]) == 0  # neither --out nor --outdir
    assert (tmp_path / "outputs" / "three-days" / "summary.csv").is_file()
    info = json.loads((tmp_path / "outputs" / "three-days" / "info.json").read_text())
    assert info["CalibNote"] and f"harnet: warning: gravity calibration {info['CalibNote']}" in err.getvalue()
    # several inputs without an output option: outputs/<name>/ each; with --out: a usage error
    other = tmp_path / "other.cwa"
    other.write_bytes(three_days.read_bytes())
    assert predict([str(three_days), str(other)], model30_dir)[0] == 0
    assert (tmp_path / "outputs" / "other" / "summary.csv").is_file()
    rc, err = predict([str(three_days), str(other), "--out", "x.csv"], model30_dir)
    assert rc == 2 and "several inputs need --outdir" in err
    assert dates(tmp_path / "outputs" / "three-days" / "summary.csv") == dates(tmp_path / "res" / "three-days" / "summary.csv")


def test_calibration_stdtol_min(model30_dir, tmp_path):
    from harnet.io import read_device
    from harnet.signal.calibrate import calibrate_gravity

    # flat-lined stretches (SD exactly 0) in six orientations, then movement
    faces = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32) * 1.02
    xyz = np.concatenate([np.repeat(faces, FS * 120, axis=0), moving(FS * 600)])
    p = write_cwa(tmp_path / "flat.cwa", "2024-01-10 10:00:00", xyz, fs=FS)
    plain = calibrate_gravity(read_device(p))
    bounded = calibrate_gravity(read_device(p), min_std_g=0.001)
    assert plain["CalibNumStationary"] >= 60
    assert bounded["CalibNumStationary"] == 0 and bounded["CalibOK"] == 0
    out = tmp_path / "o.csv"
    assert predict([str(p), "--out", str(out), "--calibration-stdtol-min", "0.001", "--calibrate"], model30_dir)[0] == 0
    info = json.loads(out.with_name("o-info.json").read_text())
    assert info["options"]["calibration_stdtol_min"] == 0.001 and info["CalibNumStationary"] == 0


def test_force_download_fetches_again_and_keeps_a_good_cache(monkeypatch):
    from test_hub import GOOD, FakeServer, make_entry

    from harnet import hub
    from harnet.errors import HarnetError

    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HARNET_OFFLINE", raising=False)
    s = FakeServer()
    try:
        s.files["/w/tiny.mdl"] = GOOD
        entry = make_entry([s.url("/w/tiny.mdl")])
        p = hub.download(entry, progress=False)
        assert hub.download(entry, progress=False) == p and s.hits["/w/tiny.mdl"] == 1  # cached: no request
        assert hub.download(entry, progress=False, force=True) == p and s.hits["/w/tiny.mdl"] == 2
        s.files["/w/tiny.mdl"] = b"tampered" + GOOD
        with pytest.raises(HarnetError):
            hub.download(entry, progress=False, force=True)
        assert p.read_bytes() == GOOD  # the verified copy stays
        monkeypatch.setenv("HARNET_OFFLINE", "1")
        with pytest.raises(HarnetError, match="--force-download needs the network"):
            hub.download(entry, force=True)
    finally:
        s.close()


def test_force_download_is_for_registry_models(three_days, model30_dir, tmp_path):
    rc, err = predict([str(three_days), "--out", str(tmp_path / "a.csv"), "--force-download"], model30_dir)
    assert rc == 2 and "--force-download applies to registry models" in err
