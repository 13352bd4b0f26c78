"""The CLI: harnet prepare -> train -> evaluate -> push (the upload replaced: no network)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import harnet
from harnet_cli.main import main


def _labelled_csv(path, participants=4, seconds=60, fs=50):
    """Per participant: still (z = 1 g), walking (2 Hz swing on x), lying (x = 1 g), 20 s each."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(participants):
        n = seconds * fs
        s = np.arange(n) / fs
        lab = np.array(["still", "walk", "lie"])[np.minimum(s // 20, 2).astype(int)]
        x = np.where(lab == "lie", 1.0, 0.0) + np.where(lab == "walk", 0.6 * np.sin(2 * np.pi * 2 * s), 0.0)
        z = np.where(lab == "lie", 0.0, 1.0)
        noise = rng.normal(0, 0.02, size=(3, n))
        rows.append(pd.DataFrame({
            "time": pd.Timestamp("2024-05-01 09:00") + pd.to_timedelta(s, unit="s"),
            "x": x + noise[0], "y": noise[1], "z": z + noise[2], "label": lab, "participant": f"p{p}",
        }))
    pd.concat(rows).to_csv(path, index=False)
    return path


def test_prepare_train_evaluate_push(tmp_path, capsys, monkeypatch):
    csv = _labelled_csv(tmp_path / "lab.csv")
    data = tmp_path / "w.npz"
    assert main(["prepare", str(csv), "--out", str(data), "--window-sec", "5", "--step-sec", "2.5"]) == 0
    out = capsys.readouterr().out
    assert "participants" in out and "walk:" in out
    with np.load(data, allow_pickle=False) as z:
        assert z["X"].shape[1:] == (3, 150) and set(z["y"].tolist()) == {"still", "walk", "lie"}

    mdir = tmp_path / "model"
    rc = main(["train", str(data), "--out", str(mdir), "--from", "none", "--epochs", "1", "--batch-size", "16",
               "--threads", "1", "--seed", "5", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "hmm.json written" in capsys.readouterr().out
    model = harnet.load(mdir)
    assert model.labels == ("lie", "still", "walk") and model.hmm is not None

    rc = main(["evaluate", str(data), "--out", str(tmp_path / "ev"), "--settings", "rf", "--cv", "2",
               "--rf-trees", "10", "--threads", "1"])
    assert rc == 0
    assert "| rf | no |" in capsys.readouterr().out
    rep = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert rep["participants"] == 4 and rep["cv"] == 2

    calls = {}

    def fake_create(self, repo_id, **kw):
        calls["create"] = (repo_id, kw)

    def fake_upload(self, **kw):
        calls["upload"] = kw
        calls["files"] = sorted(p.name for p in __import__("pathlib").Path(kw["folder_path"]).iterdir())

        class Info:
            commit_url = "http://127.0.0.1/fake/commit/1"

        return Info()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake_create)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload)
    rc = main(["push", str(mdir), "--repo", "lab/har-model", "--private", "--license", "bsd-3-clause"])
    assert rc == 0
    assert "http://127.0.0.1/fake/commit/1" in capsys.readouterr().out
    assert calls["create"][0] == "lab/har-model" and calls["create"][1]["exist_ok"] is True
    assert calls["create"][1]["private"] is True
    up = calls["upload"]
    assert up["repo_id"] == "lab/har-model"
    assert set(up["allow_patterns"]) == {"config.json", "model.safetensors", "hmm.json", "training.json", "README.md"}
    card = (mdir / "README.md").read_text()
    assert "license: bsd-3-clause" in card and "library_name: harnet" in card
    assert 'harnet.load("hf://lab/har-model")' in card and "lie, still, walk" in card
    assert "weights trained by the user" in card  # the licence of the weights' source


def test_push_refuses_a_broken_model_and_bad_repo(tmp_path, capsys, monkeypatch):
    import huggingface_hub

    def no_upload(self, **kw):  # pragma: no cover - must not be reached
        raise AssertionError("uploaded a broken model")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", no_upload)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_upload)
    from harnet.model import build
    from harnet.modeldir import save_model_dir

    d = save_model_dir(build("harnet5", labels=("a", "b")), tmp_path / "m")
    assert main(["push", str(d), "--repo", "no-slash"]) == 1
    assert "org/name" in capsys.readouterr().err
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    assert main(["push", str(d), "--repo", "lab/x"]) == 1
    assert "not pushed" in capsys.readouterr().err


def test_prepare_usage_errors(tmp_path, capsys):
    folder = tmp_path / "c24"
    folder.mkdir()
    (folder / "P001.csv.gz").write_bytes(b"")
    assert main(["prepare", str(folder), "--out", str(tmp_path / "w.npz")]) == 2
    assert "--dictionary" in capsys.readouterr().err
    csv = _labelled_csv(tmp_path / "lab.csv", participants=1, seconds=20)
    assert main(["prepare", str(csv), "--out", str(tmp_path / "w.npz"), "--label-col", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
