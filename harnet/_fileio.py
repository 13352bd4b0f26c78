"""Atomic file writes: write to a temporary name in the same folder, fsync, then rename; and file
digests (:func:`file_digests`).

A killed process leaves at most a ``.*.tmp-*`` file, never a half-written output under the
final name. A fault of the machine while writing (a full disk, a quota, a read-only file
system) becomes one :class:`~harnet.errors.WriteError` naming the final path, and the
temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from .errors import write_error

TMP_MARK = ".harnet-tmp-"


def current_umask() -> int:
    """This process's umask (read from /proc where possible: setting it to read it races other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def faults_named(path: str | os.PathLike | None, *, what: str = "", fix: str = "") -> Iterator[None]:
    """Turn an OS fault raised in the block (disk full, quota, read-only...) into a one-line
    :class:`~harnet.errors.WriteError` naming ``path``; other errors pass unchanged."""
    try:
        yield
    except Exception as e:
        err = write_error(e, path, what=what, fix=fix)
        if err is None or err is e:
            raise
        raise err from e


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, what: str = "", fix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds.

    An OS fault (see :func:`faults_named`) raises a :class:`~harnet.errors.WriteError` naming
    ``path`` (``what`` and ``fix`` go into its message); the temporary file is removed.
    """
    path = Path(path)
    # keep the full suffix (".png", ".csv.gz") so writers that look at it still work
    suffix = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    with faults_named(path, what=what, fix=fix):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}{TMP_MARK}", suffix=suffix, dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with faults_named(path, what=what, fix=fix):
            yield tmp_path
            # mkstemp creates 0600, and some writers (safetensors) replace the file with a 0600 one:
            # give the final file the usual permissions (0666 minus the umask), so shared caches work
            os.chmod(tmp_path, 0o666 & ~current_umask())
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def tmp_name_len(path: str | os.PathLike) -> int:
    """Bytes in the name of :func:`atomic_path`'s temporary file for ``path``."""
    name = Path(path).name
    return len(name.encode()) + 1 + len(TMP_MARK) + 8


def check_writable(path: str | os.PathLike, *, what: str = "", fix: str = "") -> None:
    """Refuse, before any work, a file path that cannot be written; leaves nothing behind.

    The nearest existing folder above ``path`` must be a folder in which a file can be made (a
    temporary file is made there and removed: as root, permission bits alone say nothing), and
    every name still to be made must fit the file system. Raises
    :class:`~harnet.errors.WriteError` naming ``path``, the cause and the fix.
    """
    path = Path(path).absolute()
    anc = path.parent
    missing: list[str] = []
    while not anc.exists() and anc != anc.parent:
        missing.insert(0, anc.name)
        anc = anc.parent
    with faults_named(path, what=what, fix=fix):
        if not anc.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(anc))
        try:
            limit = os.pathconf(anc, "PC_NAME_MAX")
        except (OSError, ValueError):  # pragma: no cover - not a POSIX file system
            limit = 255
        if any(len(n.encode()) > limit for n in missing) or tmp_name_len(path) > limit:
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))
        fd, probe = tempfile.mkstemp(prefix=f".harnet-probe{TMP_MARK}", dir=anc)
        os.close(fd)
        os.unlink(probe)


def writable_dir(folder: str | os.PathLike) -> bool:
    """Whether files can be made in ``folder`` (made first if missing); tried, not guessed."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".harnet-probe{TMP_MARK}", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, what: str = "", fix: str = "", **kw) -> Iterator[IO]:
    with atomic_path(path, what=what, fix=fix) as tmp:
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


def lock_beside(target: str | os.PathLike, waiting: str) -> Any:
    """Acquire the ``.<name>.lock`` file lock beside ``target`` (its folder is made) and return it;
    when another process holds it, print ``harnet: waiting for another process <waiting>`` once
    and wait. The caller releases it. OSErrors (an unwritable folder) propagate."""
    import sys

    from filelock import FileLock, Timeout

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f".{target.name}.lock"))
    try:
        lock.acquire(timeout=1.0)
    except Timeout:
        print(f"harnet: waiting for another process {waiting}", file=sys.stderr)
        lock.acquire()
    return lock
