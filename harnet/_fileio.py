"""Atomic file writes: write to a temporary name in the same folder, fsync, then rename; and file
digests (:func:`file_digests`).

A killed process leaves at most a ``.*.tmp-*`` file, never a half-written output under the
final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

TMP_MARK = ".harnet-tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the full suffix (".png", ".csv.gz") so writers that look at it still work
    suffix = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}{TMP_MARK}", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the final file the usual permissions (0666 minus the umask)
    os.chmod(tmp, 0o666 & ~_umask())
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kw) -> Iterator[IO]:
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kw) as f:
            yield f


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def file_digests(path: str | os.PathLike, algos: Iterable[str]) -> dict[str, str]:
    """Hex digests of a whole file under each of ``algos`` (``hashlib`` names, or ``gitsha1``:
    git's blob id, ``sha1(b"blob <size>\\0" + bytes)``), in one streamed read. The package's one
    file-hashing function (model directories, downloads, conversion)."""
    import hashlib

    hs: dict[str, Any] = {}
    for a in algos:
        if a == "gitsha1":
            h = hashlib.sha1()
            h.update(b"blob %d\0" % os.path.getsize(path))
            hs[a] = h
        else:
            hs[a] = hashlib.new(a)
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            for h in hs.values():
                h.update(b)
    return {a: h.hexdigest() for a, h in hs.items()}
