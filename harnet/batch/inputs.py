"""The inputs of a batch: files, folders, globs and ``@list.txt`` expanded to device files, and
each recording's output folder name (see :mod:`harnet.batch`)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from .._fileio import TMP_MARK
from ..errors import InputError
from ..io import SUFFIXES


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _is_hidden_or_temp(p: Path) -> bool:
    return p.name.startswith(".") or TMP_MARK in p.name


def _inside(p: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        p.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _dir_files(d: Path, pattern: str | None, exclude: Path | None) -> list[Path]:
    if pattern:
        found = (f for f in d.glob(pattern) if f.is_file())
    else:
        found = (f for f in d.rglob("*") if f.is_file() and f.name.lower().endswith(SUFFIXES))
    files = sorted(
        f for f in found
        if not any(part.startswith(".") for part in f.relative_to(d).parts)  # hidden files and folders
        and not _is_hidden_or_temp(f) and not _inside(f, exclude)
    )
    if not files:
        what = f"files matching {pattern!r}" if pattern else f"device files ({', '.join(SUFFIXES)})"
        raise InputError(f"{d}: holds no {what}; check the folder or --pattern")
    return files


def expand_inputs(
    inputs: Iterable[str | os.PathLike], pattern: str | None = None, *, exclude: str | os.PathLike | None = None
) -> list[Path]:
    """The recordings named by ``inputs``, in order, each once (by absolute path).

    Each input is a file (kept as given, even when missing or of an unknown format: that
    becomes a failure of its own, not of the batch), a folder (the files under it that harnet
    reads, recursively; or those matching ``pattern``, a glob relative to the folder such as
    ``"*.cwa.gz"`` or ``"**/*.cwa"``), a quoted glob (``"data/*/P*.cwa"``), or ``@list.txt``: a
    text file with one input per line (blank lines and ``#`` comments skipped; relative entries
    are relative to the list's folder). Files under ``exclude`` (the output folder) and hidden
    or temporary files are never taken from folders or globs.
    """
    ex = Path(exclude).resolve() if exclude is not None else None
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            out.append(Path(key))

    def one(s: str, base: Path | None, depth: int) -> None:
        if s.startswith("@"):
            if depth:
                raise InputError(f"{s}: a list inside a list is not supported; put the files in one list")
            lst = Path(s[1:]).expanduser()
            if base is not None and not lst.is_absolute():
                lst = base / lst
            try:
                lines = lst.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise InputError(f"{lst}: cannot read the file list ({e.strerror or e}); check the path after @") from None
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    one(line, lst.parent, depth + 1)
            return
        p = Path(s).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        if p.is_dir():
            for f in _dir_files(p, pattern, ex):
                add(f)
        elif not p.exists() and _has_magic(s):
            hits = sorted(Path(h) for h in glob.glob(str(p), recursive=True))
            files: list[Path] = []
            for h in hits:
                if h.is_dir():
                    if not _inside(h, ex):
                        with contextlib.suppress(InputError):  # an empty folder among the matches
                            files += _dir_files(h, pattern, ex)
                elif h.is_file() and not _is_hidden_or_temp(h) and not _inside(h, ex):
                    files.append(h)
            if not files:
                raise InputError(f"{s}: no files match this pattern; check it (quote it to let harnet expand it)")
            for f in files:
                add(f)
        else:
            add(p)

    for s in inputs:
        one(os.fspath(s), None, 0)
    if not out:
        raise InputError("no input files given; name files, folders, globs or @list.txt")
    return out


def recording_stem(path: str | os.PathLike) -> str:
    """The file name without its device suffix: ``P01`` for ``P01.cwa.gz``, ``notes`` for ``notes.txt``."""
    name = Path(path).name
    low = name.lower()
    for suf in sorted(SUFFIXES, key=len, reverse=True):
        if low.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    stem = Path(name).stem
    return stem or name


def path_hash(path: str | os.PathLike) -> str:
    """8 hex digits of the sha1 of the absolute path (the suffix of clashing folder names)."""
    return hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _recorded_input(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    inp = info.get("input") if isinstance(info, dict) else None
    return inp if isinstance(inp, dict) else None


def recording_names(paths: Sequence[str | os.PathLike], outdir: str | os.PathLike | None = None) -> list[str]:
    """One output folder name per path (same order), unique within the batch and stable.

    ``stem`` when no other input has that stem; otherwise ``stem-<path_hash>``, except that the
    input whose outputs ``outdir/stem/info.json`` already records keeps ``stem``.
    """
    stems = [recording_stem(p) for p in paths]
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(stems):
        groups.setdefault(s.lower(), []).append(i)  # case-insensitive: folders on macOS/Windows
    names = list(stems)
    for idx in groups.values():
        if len(idx) == 1:
            continue
        keeper = None
        if outdir is not None:
            for i in idx:
                inp = _recorded_input(Path(outdir) / stems[i])
                if inp is not None and inp.get("path") == os.path.abspath(paths[i]):
                    keeper = i
                    break
        for i in idx:
            if i != keeper:
                names[i] = f"{stems[i]}-{path_hash(paths[i])}"
    return names
