"""Self-supervised pre-training: sampler, store, schedule, and a tiny end-to-end run that learns,
resumes exactly after an interruption, and writes a backbone that loads and continues."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harnet.errors import InputError
from harnet.io.recording import Recording
from harnet.train import ssl
from harnet.train.augment import rotation_matrices
from harnet.train.transforms import TASKS, apply_pretext


def synth_recording(seed: int, minutes: float = 3.0, fs: float = 50.0, start: str = "2024-01-01T09:00:00") -> Recording:
    """A moving wrist: an asymmetric (slow rise, fast fall) swing plus noise, at ``fs`` Hz."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * fs)
    t0 = np.datetime64(start, "ns")
    time = t0 + (np.arange(n) * (1e9 / fs)).astype(np.int64).astype("timedelta64[ns]")
    s = np.arange(n) / fs
    f = rng.uniform(0.8, 2.0)
    phase = (s * f) % 1.0
    saw = np.where(phase < 0.8, phase / 0.8, (1 - phase) / 0.2)
    xyz = np.stack([0.5 * saw, 0.3 * np.sin(2 * np.pi * f * s) ** 3, 1 + 0.2 * saw**2], 1)
    xyz += 0.02 * rng.standard_normal((n, 3))
    return Recording(time, xyz.astype(np.float32))


def tiny_config(**kw) -> ssl.PretrainConfig:
    base = dict(
        arch="harnet5", subjects_per_batch=2, windows_per_subject=16, lr=3e-4, lr_scale=False,
        warmup_epochs=0, max_epochs=3, val_fraction=0.2, calibrate=False, seed=0,
    )
    base.update(kw)
    return ssl.PretrainConfig(**base)


@pytest.fixture(scope="module")
def sources() -> list[ssl.RecordingSource]:
    return [ssl.RecordingSource(f"r{i}", synth_recording(i)) for i in range(5)]


# ---- sampler, statistics, split, schedule ---------------------------------------------------

def test_sample_windows_proportional_to_std() -> None:
    std = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    idx = ssl.sample_windows(std, 200_000, np.random.default_rng(0))
    assert (np.diff(idx) >= 0).all()  # sorted for disk locality
    freq = np.bincount(idx, minlength=5) / len(idx)
    assert freq[0] == 0.0  # a window without movement is never drawn
    np.testing.assert_allclose(freq, std / std.sum(), atol=0.005)
    with pytest.raises(ValueError, match="not all zero"):
        ssl.sample_windows(np.zeros(4), 3, np.random.default_rng(0))
    # the same generator state gives the same draw
    a = ssl.sample_windows(std, 50, np.random.default_rng(5))
    np.testing.assert_array_equal(a, ssl.sample_windows(std, 50, np.random.default_rng(5)))


def test_window_std_is_rotation_invariant() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 3, 150)) * np.array([0.1, 0.5, 1.0])[None, :, None] + 1.0
    s = ssl.window_std(x)
    np.testing.assert_allclose(s, np.sqrt(x.var(axis=2).mean(axis=1)), rtol=1e-6)
    rot = rotation_matrices(20, rng) @ x
    np.testing.assert_allclose(ssl.window_std(rot), s, rtol=1e-5)
    assert ssl.window_std(np.ones((2, 3, 150))).tolist() == [0.0, 0.0]


def test_split_groups_is_deterministic_and_disjoint() -> None:
    groups = [f"s{i}" for i in range(10)] * 2
    tr, va = ssl.split_groups(groups, 0.2, seed=3)
    assert len(va) == 2 and len(tr) == 8 and not set(tr) & set(va)
    assert (tr, va) == ssl.split_groups(list(reversed(groups)), 0.2, seed=3)
    assert ssl.split_groups(groups, 0.2, seed=4) != (tr, va) or ssl.split_groups(groups, 0.2, seed=5) != (tr, va)
    assert ssl.split_groups(["a", "b"], 0.01, 0)[1] != []  # at least one held out
    assert ssl.split_groups(["a"], 0.5, 0) == (["a"], [])  # one group: nothing to hold out
    assert ssl.split_groups(["a", "b", "c"], 0.0, 0) == (["a", "b", "c"], [])


def test_learning_rate_scaling_and_geometric_warmup() -> None:
    cfg = ssl.PretrainConfig(lr=1e-4, subjects_per_batch=4, windows_per_subject=256, warmup_epochs=5, warmup_start=0.1)
    target = 1e-4 * 1024 / 512
    lrs = [ssl.learning_rate(e, cfg) for e in range(8)]
    assert lrs[0] == pytest.approx(target * 0.1)
    ratios = np.array(lrs[1:6]) / np.array(lrs[:5])
    np.testing.assert_allclose(ratios, 0.1 ** (-1 / 5))  # geometric
    assert lrs[5:] == pytest.approx([target] * 3)  # then held
    flat = ssl.PretrainConfig(lr=1e-4, lr_scale=False, warmup_epochs=0)
    assert ssl.learning_rate(0, flat) == 1e-4


def test_config_rejects_bad_settings() -> None:
    with pytest.raises(InputError, match="pretext tasks"):
        ssl.PretrainConfig(tasks=("aot", "scale"))
    with pytest.raises(InputError, match="val_fraction"):
        ssl.PretrainConfig(val_fraction=1.0)
    with pytest.raises(InputError, match="windows_per_subject"):
        ssl.PretrainConfig(windows_per_subject=0)


# ---- window store --------------------------------------------------------------------------

def test_window_store_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal((n, 3, 150)).astype(np.float32) for n in (4, 0, 7)]
    store = ssl.WindowStore(tmp_path / "w", 150)
    n = store.add("k1", "rec one", "g1", iter(chunks), {"kind": "memory"})
    assert n == 11 and "k1" in store
    again = ssl.WindowStore(tmp_path / "w", 150)  # reopened from its index
    mm = again.windows("k1")
    assert isinstance(mm, np.memmap) and mm.shape == (11, 3, 150)
    np.testing.assert_array_equal(mm, np.concatenate(chunks))
    np.testing.assert_allclose(again.std("k1"), ssl.window_std(np.concatenate(chunks)))
    assert again.entries["k1"]["group"] == "g1"
    with pytest.raises(InputError, match="another format or length"):
        ssl.WindowStore(tmp_path / "w", 300)
    with pytest.raises(ValueError, match=r"\(n, 3, 150\)"):
        store.add("k2", "bad", "g", [np.zeros((2, 3, 300), np.float32)], {})
    assert "k2" not in ssl.WindowStore(tmp_path / "w", 150)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["index.json", "k1.npy", "k1.std.npy"]


def test_recording_windows_drop_gaps_and_nonwear() -> None:
    """2 h lying still (non-wear after 90 min) and a 2-min gap give no windows."""
    fs = 25.0
    move = synth_recording(1, minutes=10, fs=fs)
    still_n = int(2 * 3600 * fs)
    t_still = move.time[-1] + np.timedelta64(40, "ms") + (np.arange(still_n) * 40_000_000).astype("timedelta64[ns]")
    xyz_still = np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (still_n, 1))
    after = synth_recording(2, minutes=10, fs=fs, start=str(t_still[-1] + np.timedelta64(120, "s")))
    rec = Recording(
        np.concatenate([move.time, t_still, after.time]), np.concatenate([move.xyz, xyz_still, after.xyz])
    )
    cfg = ssl.PretrainConfig(arch="harnet10", calibrate=False, lowpass_hz=None)
    w = np.concatenate(list(ssl.recording_windows(rec, cfg)))
    assert w.shape[1:] == (3, 300) and not np.isnan(w).any()
    # 10 + 10 minutes of movement (less at most 2 partial windows each); the 2-h still episode
    # is non-wear (a still run longer than 90 min) and the 2-min gap has no samples
    moving = int((ssl.window_std(w) > 0.01).sum())
    assert 116 <= moving <= 120
    assert len(w) - moving <= 2
    cfg_nw = ssl.PretrainConfig(arch="harnet10", calibrate=False, lowpass_hz=None, detect_nonwear=False)
    w_all = np.concatenate(list(ssl.recording_windows(rec, cfg_nw)))
    assert len(w_all) >= len(w) + 2 * 60 * 6 - 2  # with detection off the still windows stay


# ---- end to end ----------------------------------------------------------------------------

def _probe_loss(net, x: np.ndarray, y: np.ndarray) -> float:
    """Pretext loss on a fixed batch, with batch statistics (a few steps leave BN's running
    averages far from the data's, so eval mode would measure those, not learning)."""
    import torch

    net.train()
    with torch.no_grad():
        out = net(torch.from_numpy(x))
        yb = torch.from_numpy(y)
        return float(torch.stack([torch.nn.functional.cross_entropy(o, yb[:, i]) for i, o in enumerate(out)]).mean())


def test_pretrain_learns_writes_a_backbone_and_continues(tmp_path: Path, sources) -> None:
    import torch
    from safetensors.torch import load_file

    import harnet
    from harnet.modeldir import load_model_dir, sha256_file

    cfg = tiny_config()
    _, net0 = ssl.init_ssl_net(cfg)
    store_x = np.concatenate([
        np.concatenate(list(ssl.recording_windows(s.recording, cfg)))[::2] for s in sources
    ])
    x, y = apply_pretext(store_x, np.random.default_rng(99))
    before = _probe_loss(net0, x, y)

    out = tmp_path / "bb"
    lines: list[str] = []
    res = ssl.pretrain(sources, out, cfg, threads=1, progress=lines.append)
    assert res.stopped == "max_epochs" and len(res.history) == 3 and not res.resumed
    assert (res.n_train_recordings, res.n_val_recordings, res.n_windows) == (4, 1, 5 * 36)
    assert set(res.val_accuracy) == set(TASKS) and all(0.0 <= a <= 1.0 for a in res.val_accuracy.values())
    assert any("epoch 3/3" in s for s in lines)

    # the loss went down: the last epoch's network against the initial one, on the same batch
    st = torch.load(tmp_path / "bb.pretrain-work" / ssl.CHECKPOINT, weights_only=True)
    _, net = ssl.init_ssl_net(cfg)
    net.load_state_dict(st["net"])
    after = _probe_loss(net, x, y)
    assert after < before - 0.03, (before, after)

    # a backbone directory that harnet.load / load_model_dir read, with the best epoch's weights
    cfg_json = json.loads((out / "config.json").read_text())
    assert cfg_json["kind"] == "backbone" and cfg_json["arch"] == "harnet5"
    assert cfg_json["pretraining"]["best_epoch"] == res.best_epoch
    assert len(cfg_json["pretraining"]["history"]) == 3
    assert cfg_json["preprocessing"]["calibrate_gravity"] is False
    assert cfg_json["pretext_heads"]["sha256"] == sha256_file(out / ssl.HEADS_FILE)
    model = harnet.load(out, num_classes=4)
    assert model(torch.zeros(2, 3, 150)).shape == (2, 4)
    assert torch.equal(model.state_dict()["feature_extractor.layer1.0.weight"],
                       load_model_dir(out).state_dict()["feature_extractor.layer1.0.weight"])
    heads = load_file(str(out / ssl.HEADS_FILE))
    assert sorted(heads) == sorted(f"{t}_h.linear1.{p}" for t in TASKS for p in ("weight", "bias"))
    assert heads["aot_h.linear1.weight"].shape == (2, 512)
    del model

    # continue pre-training from it: weights and heads are the starting point
    cfg2 = tiny_config(max_epochs=1, seed=1, windows_per_subject=4)
    bb2, net2 = ssl.init_ssl_net(cfg2, resume_from=out)
    for k, v in heads.items():
        assert torch.equal(net2.state_dict()[k], v)
    for k, v in load_model_dir(out).state_dict().items():
        if k.startswith("feature_extractor."):
            assert torch.equal(bb2.state_dict()[k], v)
    res2 = ssl.pretrain(sources, tmp_path / "bb2", cfg2, resume_from=out, threads=1, progress=lambda s: None)
    prov = json.loads((tmp_path / "bb2" / "config.json").read_text())["provenance"]
    assert prov["init"] == str(out) and prov["init_weights_sha256"] == cfg_json["weights_sha256"]
    assert len(res2.history) == 1
    with pytest.raises(InputError, match="--arch harnet5"):
        ssl.pretrain(sources, tmp_path / "bb3", tiny_config(arch="harnet10"), resume_from=out)


def test_interrupted_run_resumes_exactly(tmp_path: Path, sources) -> None:
    import torch
    from safetensors.torch import load_file

    cfg = tiny_config(max_epochs=2, windows_per_subject=8)
    full = ssl.pretrain(sources, tmp_path / "a", cfg, threads=1, progress=lambda s: None)
    # 4 training recordings, 2 per step: 2 steps per epoch; stop mid-epoch 2 (after step 3)
    part = ssl.pretrain(sources, tmp_path / "b", cfg, threads=1, stop_after_steps=3, progress=lambda s: None)
    assert part.stopped == "interrupted" and len(part.history) == 1
    ckpt = tmp_path / "b.pretrain-work" / ssl.CHECKPOINT
    st = torch.load(ckpt, weights_only=True)
    assert (st["epoch"], st["step"]) == (1, 1)
    lines: list[str] = []
    rest = ssl.pretrain(sources, tmp_path / "b", cfg, threads=1, progress=lines.append)
    assert rest.resumed and any("resuming" in s for s in lines)
    assert any("from the window store" in s for s in lines)  # the first pass is not redone
    a = torch.load(tmp_path / "a.pretrain-work" / ssl.CHECKPOINT, weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k
    assert [h["train_loss"] for h in full.history] == pytest.approx([h["train_loss"] for h in rest.history], rel=1e-6)
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # other settings cannot silently resume a checkpoint
    with pytest.raises(InputError, match="other settings"):
        ssl.pretrain(sources, tmp_path / "b", tiny_config(max_epochs=2, windows_per_subject=4), threads=1)
    # a finished run asked for more epochs continues from where it stopped
    more = ssl.pretrain(sources, tmp_path / "b", tiny_config(max_epochs=3, windows_per_subject=8), threads=1,
                        progress=lambda s: None)
    assert len(more.history) == 3 and more.history[:2] == rest.history


def test_no_usable_windows_is_an_error(tmp_path: Path) -> None:
    short = synth_recording(0, minutes=0.05)  # 3 s: not one whole 5-s window
    with pytest.raises(InputError, match="usable window"):
        ssl.pretrain([ssl.RecordingSource("short", short)], tmp_path / "o", tiny_config(), threads=1,
                     progress=lambda s: None)
