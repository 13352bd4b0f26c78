"""Where harnet keeps the files it derives from downloaded weights, shared caches included.

Derived files are the converted model directory (``models/<name>-<checksum>``) and ONNX graphs
(``onnx/<weights sha256>/``). They are looked for in these roots, in order:

1. the weights cache (:func:`harnet.hub.cache_dir`: ``$HARNET_CACHE``, else
   ``$XDG_CACHE_HOME/harnet``, else ``~/.cache/harnet``), which may be a shared, read-only
   folder filled by ``harnet download`` on a login node;
2. the per-user cache (``$XDG_CACHE_HOME/harnet``, else ``~/.cache/harnet``) when it is not
   the same folder;
3. ``<temporary folder>/harnet-<uid>`` (``$TMPDIR``, else ``/tmp``).

A missing derived file is built in the first root that can be written (tried, not guessed: as
root, permission bits say nothing); when that is not the weights cache, harnet says where once
per process. When none can be written, a :class:`~harnet.errors.WriteError` says what to run
where. Builders hold a lock beside the target (:func:`building`), so many jobs starting at once
on a fresh cache build each file once, and every file appears under its final name only when
complete (atomic rename).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from ._fileio import writable_dir
from .errors import WriteError

_ANNOUNCED: set[str] = set()


def user_cache_dir() -> Path:
    """The per-user cache: ``$XDG_CACHE_HOME/harnet``, else ``~/.cache/harnet``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "harnet"


def temp_cache_dir() -> Path:
    """``<temporary folder>/harnet-<uid>``: the last resort, local to the machine."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"harnet-{uid}"


def roots() -> list[Path]:
    """The folders searched for derived files, in order (no duplicates)."""
    from .hub import cache_dir

    out: list[Path] = []
    for p in (cache_dir(), user_cache_dir(), temp_cache_dir()):
        if all(os.path.abspath(p) != os.path.abspath(q) for q in out):
            out.append(p)
    return out


def find(rel: str | Path) -> Path | None:
    """The first ``root / rel`` that exists, or None."""
    for r in roots():
        if (r / rel).exists():
            return r / rel
    return None


def writable_root(what: str, name: str) -> Path:
    """The first root in which files can be made, for building ``what``.

    ``name``: the model to name in the fix (``harnet download NAME``). Says once per process
    when the weights cache cannot be written and another root is used; raises
    :class:`~harnet.errors.WriteError` when none can be written.
    """
    rs = roots()
    for r in rs:
        if writable_dir(r):
            if r != rs[0] and str(r) not in _ANNOUNCED:
                _ANNOUNCED.add(str(r))
                print(
                    f"harnet: the weights cache {rs[0]} cannot be written; building {what} in {r} "
                    f"instead (once; `harnet download {name}` where the cache is writable avoids this)",
                    file=sys.stderr,
                )
            return r
    raise WriteError(
        f"cannot build {what}: the weights cache {rs[0]} and the per-user folders "
        f"({', '.join(str(r) for r in rs[1:])}) cannot be written; run `harnet download {name}` "
        f"where {rs[0]} is writable (e.g. on the login node), or set XDG_CACHE_HOME to a writable folder",
        path=rs[0],
        errno=errno.EROFS,
    )


@contextlib.contextmanager
def building(target: Path, what: str) -> Iterator[None]:
    """Hold the lock for building ``target`` (a file or folder); others wait, then reuse it.

    The lock file is ``.<name>.lock`` beside the target. Check again for the target after
    entering: another process may have built it while this one waited.
    """
    from ._fileio import faults_named, lock_beside

    with faults_named(target, what=what):
        lock = lock_beside(target, f"building {what} ({target})")
    try:
        yield
    finally:
        lock.release()
