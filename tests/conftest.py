"""Shared fixtures. Tests run offline: sockets to anything but 127.0.0.1 are refused."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
SHAPES_JSON = SHARED / "docs" / "harnet_state_dict_shapes.json"


def shared_path(rel: str) -> Path:
    """A file under ../shared/data, or skip the test when the folder is absent."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"../shared/data/{rel} not present (only in the project's own checkout)")
    return p


@pytest.fixture(scope="session")
def state_dict_shapes() -> dict:
    if not SHAPES_JSON.exists():
        pytest.skip("../shared/docs/harnet_state_dict_shapes.json not present")
    return json.loads(SHAPES_JSON.read_text())


_real_connect = socket.socket.connect


def _guarded_connect(self, address):  # pragma: no cover - exercised only on violations
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
        raise RuntimeError(f"test tried to reach the network ({address}); tests must run offline")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, request, tmp_path_factory):
    """No network (except loopback) and an isolated, empty weights cache for every test."""
    if request.node.get_closest_marker("pypi") is None:
        monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    cache = tmp_path_factory.mktemp("hfcache")
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HARNET_CACHE", str(cache / "harnet"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def model30_dir(tmp_path_factory):
    """A harnet30 classifier directory made at test time (random weights, non-trivial BN, HMM)."""
    from _tinymodels import make_model30_with_hmm

    return make_model30_with_hmm(tmp_path_factory.mktemp("models") / "m30")
