"""harnet's errors. Each message says what is wrong and what to do about it.

Exit codes used by the CLI: 2 for usage errors (click's own), 1 for input or model errors
(every :class:`HarnetError`), including faults of the machine while harnet writes (a full
disk, a quota, a read-only file system: :class:`WriteError`, made by :func:`write_error`).
"""

from __future__ import annotations


class HarnetError(Exception):
    """Base class: a problem the user can fix; the CLI prints it on one line and exits 1."""

    exit_code = 1


class ModelError(HarnetError):
    """A model directory, config or weight file is missing or inconsistent."""


class InputShapeError(HarnetError, ValueError):
    """An input array has the wrong shape for the network."""


class ChecksumError(HarnetError):
    """A downloaded or cached file does not match its published checksum."""


class OfflineError(HarnetError):
    """Weights are needed but not cached and the network may not be used."""


class UnsafePickleError(HarnetError):
    """A pickle asked to run something outside the converter's allow-list."""


class InputError(HarnetError):
    """A device or data file cannot be read or makes no sense."""


class JavaMissingError(InputError):
    """actipy's device readers need a Java runtime and none was found."""


# ---------------------------------------------------------------------------------------------
# faults from the machine (a full disk, a read-only file system...): not harnet's bugs

import errno as _errno  # noqa: E402
import re as _re  # noqa: E402

#: errno -> (the cause in words, the usual fix) for the faults harnet turns into one line.
MACHINE_FAULTS: dict[int, tuple[str, str]] = {
    _errno.ENOSPC: ("no space left on the device", "free space there or write to another disk"),
    _errno.EDQUOT: ("the disk quota is exceeded", "delete files or ask for more quota (`quota -s` shows it), or write elsewhere"),
    _errno.EROFS: ("the file system is read-only", "write to a writable folder"),
    _errno.EACCES: ("permission denied", "check the folder's permissions or write to another folder"),
    _errno.EPERM: ("the operation is not permitted", "check the folder's permissions or write to another folder"),
    _errno.ENAMETOOLONG: ("the path is too long", "choose a shorter folder or file name"),
    _errno.EFBIG: ("the file is too large for the file system", "write to another file system"),
    _errno.EIO: ("an input/output error (a failing disk or a lost network mount)", "check the disk or mount, then run again"),
    _errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose a path whose folders are folders"),
    _errno.EISDIR: ("the path is a folder", "give a file path"),
}
#: The faults after which every further write to the same disk fails too.
DISK_FULL = frozenset({_errno.ENOSPC, _errno.EDQUOT})
_ERRNO_IN_TEXT = _re.compile(r"(?:\[errno |os error )(\d+)", _re.IGNORECASE)


class WriteError(HarnetError):
    """The operating system refused a write harnet needed (disk full, quota, read-only, permission...).

    ``path``: what harnet was writing (or None); ``errno``: the OS error number; ``disk_full``:
    True for ENOSPC and EDQUOT (every further write to that disk fails the same way).
    """

    def __init__(self, message: str, *, path: object = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.errno = errno

    def __reduce__(self):  # keeps the message, path and errno across processes (batch workers)
        return (_rebuild_write_error, (str(self), self.path, self.errno))

    @property
    def disk_full(self) -> bool:
        return self.errno in DISK_FULL


def _rebuild_write_error(message: str, path: object, errno: int | None) -> "WriteError":
    return WriteError(message, path=path, errno=errno)


def fault_errno(e: BaseException) -> int | None:
    """The OS error number of a machine fault behind ``e`` (itself or its causes), or None.

    Reads ``OSError.errno``, and the number in the text of errors that carry it only there
    (pyarrow's ``[errno 28]``, safetensors' ``(os error 28)``).
    """
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, HarnetError) and not isinstance(cur, WriteError):
            return None  # harnet already said what is wrong
        n = getattr(cur, "errno", None) if isinstance(cur, OSError) else None
        if n is None and (isinstance(cur, OSError) or type(cur).__name__ == "SafetensorError"):
            m = _ERRNO_IN_TEXT.search(str(cur))
            n = int(m.group(1)) if m else None
        if n in MACHINE_FAULTS:
            return n
        cur = cur.__cause__ or cur.__context__
    return None


def write_error(e: BaseException, path: object = None, *, what: str = "", fix: str = "") -> WriteError | None:
    """``e`` as a one-line :class:`WriteError` naming the path, the cause and the fix; None when
    ``e`` is not a machine fault (then it is a bug or another error, to be raised as it is).

    ``what``: what was being written (e.g. "the summary"); ``fix``: a fix for this place,
    said after the usual one for the cause.
    """
    if isinstance(e, WriteError):
        return e
    n = fault_errno(e)
    if n is None:
        return None
    if path is None:
        path = getattr(e, "filename", None)
    cause, usual = MACHINE_FAULTS[n]
    where = f" {what}" if what else ""
    target = f"{where} {path}" if path is not None else (where or " a file")
    tail = f"; {fix}" if fix else ""
    return WriteError(f"cannot write{target}: {cause} ({_errno.errorcode.get(n, n)}): {usual}{tail}", path=path, errno=n)
