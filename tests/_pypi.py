"""Fetch a published source distribution from the package index once and keep it for later test runs.

Only tests marked ``@pytest.mark.pypi`` use this (the marker lifts the offline socket guard).
The sdist is found and downloaded with harnet's own package-index code (:mod:`harnet.pkgindex`:
the simple API of the index pip is configured with; the file is checked against the sha256
pinned in the registry; nothing is built or run, unlike ``pip download``). The files live in
``<repo>/.cache/pypi`` (git-ignored); a copy already in the project's main checkout
(``/work/main/.cache/pypi``) is reused after the same check. When the index cannot be reached
the calling test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from harnet import pkgindex, registry
from harnet.registry import SdistMember

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("HARNET_TEST_PYPI_CACHE", ROOT / ".cache" / "pypi"))
_ELSEWHERE = (Path("/work/main/.cache/pypi"),)  # the project's own checkout, when tests run from a clone
#: sha256 of asleep 0.5.0's assets/ssl.joblib.lzma, the default model's weights (reference.md section 2)
ASLEEP_SSL_SHA256 = "de0341fa1d16d0a8b94a098f63c28da68158c783977340784accc69d01489c10"


def sdist(src: SdistMember) -> Path:
    """Path to the verified sdist ``src.filename``, downloaded through the package index on first use."""
    for folder in (CACHE, *_ELSEWHERE):
        if (folder / src.filename).is_file() and sha256(folder / src.filename) == src.sha256:
            return folder / src.filename
    CACHE.mkdir(parents=True, exist_ok=True)
    reasons = []
    for index in pkgindex.index_urls():
        try:
            link = pkgindex.find_sdist(index.url, src)
        except (LookupError, OSError, ValueError) as e:
            reasons.append(f"{pkgindex.redact(index.url)}: {e}")
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{src.filename}.", dir=CACHE)
        try:
            with os.fdopen(fd, "wb") as out, pkgindex.open_url(link.url, "*/*") as resp:
                while b := resp.read(1 << 20):
                    out.write(b)
        except OSError as e:
            os.unlink(tmp)
            reasons.append(f"{link.url}: {e}")
            continue
        got = sha256(Path(tmp))
        if got != src.sha256:
            os.unlink(tmp)
            raise AssertionError(f"{src.filename} from {link.url} has sha256 {got}, pinned {src.sha256}")
        os.replace(tmp, CACHE / src.filename)
        return CACHE / src.filename
    pytest.skip(f"package index unreachable, cannot fetch {src.filename}: {'; '.join(reasons)}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def member(archive: Path, src: SdistMember, expect_sha256: str) -> Path:
    """Extract ``src.member`` from the verified sdist once (into CACHE, else a temporary folder)."""
    out = CACHE / src.top / src.member
    if out.is_file() and sha256(out) == expect_sha256:
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = pkgindex.extract_member(archive, src, out)
    except OSError:  # a read-only cache folder: extract into a temporary one
        out = Path(tempfile.mkdtemp()) / Path(src.member).name
        tmp = pkgindex.extract_member(archive, src, out)
    got = sha256(tmp)
    if got != expect_sha256:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise AssertionError(f"{src.member} in {archive.name} has sha256 {got}, expected {expect_sha256}")
    os.replace(tmp, out)
    return out


def asleep_bundle() -> Path:
    """The asleep 0.5.0 classifier bundle (the default model's weights) from its PyPI sdist."""
    entry = registry.get(registry.DEFAULT_CLASSIFIER)
    (src,) = entry.sdists
    assert entry.checksum == ASLEEP_SSL_SHA256
    return member(sdist(src), src, ASLEEP_SSL_SHA256)
