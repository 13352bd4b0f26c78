"""Fetch a published source distribution from PyPI once and keep it for later test runs.

Only tests marked ``@pytest.mark.pypi`` use this (the marker lifts the offline socket guard).
The files live in ``<repo>/.cache/pypi`` (git-ignored); a copy already in the project's main
checkout (``/work/main/.cache/pypi``) is reused as is. When PyPI cannot be reached the calling
test is skipped with pip's reason.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("HARNET_TEST_PYPI_CACHE", ROOT / ".cache" / "pypi"))
_ELSEWHERE = (Path("/work/main/.cache/pypi"),)  # the project's own checkout, when tests run from a clone
#: sha256 of asleep 0.5.0's assets/ssl.joblib.lzma, the default model's weights (reference.md section 2)
ASLEEP_SSL_SHA256 = "de0341fa1d16d0a8b94a098f63c28da68158c783977340784accc69d01489c10"
_OFFLINE_SIGNS = ("connection", "network", "resolve", "temporary failure", "timed out", "no matching distribution",
                  "could not find a version", "max retries", "ssl")


def sdist(name: str, version: str) -> Path:
    """Path to ``name-version.tar.gz``, downloaded with pip on first use; skips when offline."""
    fname = f"{name}-{version}.tar.gz"
    for folder in (CACHE, *_ELSEWHERE):
        if (folder / fname).is_file():
            return folder / fname
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--quiet", f"{name}=={version}", "-d", tmp]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip(f"PyPI unreachable: pip download {name}=={version} took over 10 min")
        got = Path(tmp) / fname
        if r.returncode != 0 or not got.is_file():
            msg = (r.stderr or r.stdout).strip().splitlines()
            last = msg[-1] if msg else f"exit code {r.returncode}"
            if any(s in (r.stderr + r.stdout).lower() for s in _OFFLINE_SIGNS):
                pytest.skip(f"PyPI unreachable, cannot fetch {name}=={version}: {last}")
            raise RuntimeError(f"pip download {name}=={version} failed: {last}")
        os.replace(got, CACHE / fname)
    return CACHE / fname


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def member(archive: Path, inner: str, expect_sha256: str) -> Path:
    """Extract ``<top>/<inner>`` from a source tarball once (beside it) and check its sha256."""
    top = archive.name.removesuffix(".tar.gz")
    out = archive.parent / top / inner
    if not (out.is_file() and sha256(out) == expect_sha256):
        try:
            _extract(archive, f"{top}/{inner}", out)
        except PermissionError:  # a read-only cache folder: extract into a temporary one
            out = Path(tempfile.mkdtemp()) / Path(inner).name
            _extract(archive, f"{top}/{inner}", out)
    got = sha256(out)
    assert got == expect_sha256, f"{inner} in {archive.name} has sha256 {got}, expected {expect_sha256}"
    return out


def _extract(archive: Path, name: str, out: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        try:
            f = tar.extractfile(name)
        except KeyError:
            raise AssertionError(f"{archive.name} has no {name}") from None
        assert f is not None, f"{name} in {archive.name} is not a file"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with open(tmp, "wb") as g:
            while b := f.read(1 << 20):
                g.write(b)
        os.replace(tmp, out)


def asleep_bundle() -> Path:
    """The asleep 0.5.0 classifier bundle (the default model's weights) from its PyPI sdist."""
    return member(sdist("asleep", "0.5.0"), "assets/ssl.joblib.lzma", ASLEEP_SSL_SHA256)
