"""Fetch, verify, cache: against a local HTTP server on 127.0.0.1 and a Hugging Face cache built on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harnet import hub, registry
from harnet._fileio import TMP_MARK
from harnet.errors import ChecksumError, ModelError, OfflineError
from harnet.registry import WeightsEntry

GOOD = os.urandom(300_000)
BAD = bytes(b ^ 0xFF for b in GOOD[:1000]) + GOOD[1000:]


class FakeServer:
    """Serves ``files[path] -> bytes`` on 127.0.0.1 and counts GET requests per path.

    ``truncate[path] = n`` announces the full length but sends only n bytes.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self._mu = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with server._mu:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: server.truncate.get(self.path, len(body))])

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HARNET_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    s = FakeServer()
    yield s
    s.close()


def make_entry(urls, data: bytes = GOOD, algo: str = "sha256", name: str = "tiny-test") -> WeightsEntry:
    digest = hub_digest(data, algo)
    base = registry.get("harnet10")
    return dataclasses.replace(
        base, name=name, urls=tuple(urls), filename="tiny.mdl", checksum_algo=algo, checksum=digest, size=len(data)
    )


def hub_digest(data: bytes, algo: str) -> str:
    if algo == "gitsha1":
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return hashlib.new(algo, data).hexdigest()


def cache_listing(entry: WeightsEntry) -> list[str]:
    d = hub.cached_path(entry).parent
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def assert_no_temp_files(entry: WeightsEntry) -> None:
    leftovers = [n for n in cache_listing(entry) if TMP_MARK in n]
    assert leftovers == []


# ---------------------------------------------------------------------------------------------
# locations and checksums


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNET_CACHE", str(tmp_path / "a"))
    assert hub.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("HARNET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "harnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.cache_dir() == tmp_path / "home" / ".cache" / "harnet"
    assert "site-packages" not in str(hub.cache_dir())


def test_hf_cache_dir_is_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub.hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hubcache"))
    assert hub.hf_cache_dir() == tmp_path / "hubcache"


def test_gitsha1_matches_git_hash_object(tmp_path):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    f = tmp_path / "blob.bin"
    f.write_bytes(os.urandom(3 * (1 << 20) + 17))  # spans several read chunks
    expected = subprocess.run([git, "hash-object", str(f)], capture_output=True, text=True, check=True).stdout.strip()
    assert hub.hash_file(f, "gitsha1") == expected
    assert hub.verify_file(f, "gitsha1", expected)
    assert hub.verify_file(f, "gitsha1", expected.upper())
    assert not hub.verify_file(f, "gitsha1", "0" * 40)
    assert not hub.verify_file(tmp_path / "missing", "gitsha1", expected)
    data = f.read_bytes()
    assert hub.hash_file(f, "sha256") == hashlib.sha256(data).hexdigest()
    assert hub.hash_file(f, "md5") == hashlib.md5(data).hexdigest()
    with pytest.raises(ModelError, match="unknown checksum"):
        hub.hash_file(f, "crc32")


def test_offline_switches(monkeypatch):
    monkeypatch.delenv("HARNET_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert not hub.is_offline()
    assert hub.is_offline(True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.is_offline() and not hub.is_offline(False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HARNET_OFFLINE", "yes")
    assert hub.is_offline()


# ---------------------------------------------------------------------------------------------
# the four download cases, plus mirrors and offline


def test_good_file_then_valid_cache_makes_no_request(server):
    server.files["/w/tiny.mdl"] = GOOD
    entry = make_entry([server.url("/w/tiny.mdl")])
    p = hub.fetch(entry, progress=False)
    assert p == hub.cached_path(entry) and p.is_relative_to(hub.cache_dir())
    assert p.read_bytes() == GOOD
    assert server.hits == {"/w/tiny.mdl": 1}
    assert_no_temp_files(entry)
    # cached and valid: no request at all, also offline
    assert hub.fetch(entry, progress=False) == p
    assert hub.fetch(entry, offline=True) == p
    assert server.hits == {"/w/tiny.mdl": 1}


def test_valid_cache_prefilled_makes_no_request(server):
    entry = make_entry([server.url("/w/tiny.mdl")], algo="gitsha1")
    target = hub.cached_path(entry)
    target.parent.mkdir(parents=True)
    target.write_bytes(GOOD)
    assert hub.fetch(entry) == target
    assert server.hits == {}


def test_corrupt_download_raises_and_leaves_nothing(server):
    server.files["/w/tiny.mdl"] = BAD
    entry = make_entry([server.url("/w/tiny.mdl")], algo="md5")
    with pytest.raises(ChecksumError) as ei:
        hub.fetch(entry, progress=False)
    msg = str(ei.value)
    assert entry.name in msg and entry.checksum in msg and hashlib.md5(BAD).hexdigest() in msg
    assert "\n" not in msg
    assert server.hits == {"/w/tiny.mdl": 1}
    assert not hub.cached_path(entry).exists()
    assert [n for n in cache_listing(entry) if not n.endswith(".lock")] == []


def test_corrupt_cache_is_downloaded_once_more(server):
    server.files["/w/tiny.mdl"] = GOOD
    entry = make_entry([server.url("/w/tiny.mdl")])
    target = hub.cached_path(entry)
    target.parent.mkdir(parents=True)
    target.write_bytes(GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF]))  # one byte flipped (GOOD is random: appending b"x" matched it 1 time in 256)
    assert hub.fetch(entry, progress=False) == target
    assert target.read_bytes() == GOOD
    assert server.hits == {"/w/tiny.mdl": 1}
    assert_no_temp_files(entry)


def test_corrupt_cache_and_corrupt_server_gives_checksum_error(server):
    server.files["/w/tiny.mdl"] = BAD
    entry = make_entry([server.url("/w/tiny.mdl")])
    target = hub.cached_path(entry)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"garbage")
    with pytest.raises(ChecksumError, match="cached copy was corrupt and the fresh download is too"):
        hub.fetch(entry, progress=False)
    assert server.hits == {"/w/tiny.mdl": 1}  # exactly one re-download, no loop
    assert not target.exists()
    assert_no_temp_files(entry)
    # the server is fixed: the next call downloads and succeeds
    server.files["/w/tiny.mdl"] = GOOD
    assert hub.fetch(entry, progress=False).read_bytes() == GOOD


def test_every_load_rehashes_the_cache(server):
    server.files["/w/tiny.mdl"] = GOOD
    entry = make_entry([server.url("/w/tiny.mdl")])
    p = hub.fetch(entry, progress=False)
    with open(p, "r+b") as f:  # damaged after download, e.g. a disk error
        f.seek(12345)
        f.write(b"\0\0\0")
    assert hub.fetch(entry, progress=False).read_bytes() == GOOD
    assert server.hits == {"/w/tiny.mdl": 2}


@pytest.mark.parametrize("how", ["argument", "HF_HUB_OFFLINE", "HARNET_OFFLINE"])
def test_offline_and_missing_names_the_fix(server, monkeypatch, how):
    server.files["/w/tiny.mdl"] = GOOD
    entry = make_entry([server.url("/w/tiny.mdl")])
    kw = {}
    if how == "argument":
        kw["offline"] = True
    else:
        monkeypatch.setenv(how, "1")
    with pytest.raises(OfflineError) as ei:
        hub.fetch(entry, **kw)
    msg = str(ei.value)
    assert "harnet download tiny-test" in msg and "HARNET_CACHE" in msg
    assert (how in msg) if how != "argument" else ("offline=True" in msg)
    assert server.hits == {}
    assert not hub.cached_path(entry).parent.exists()


def test_offline_with_corrupt_cache_is_a_checksum_error(server):
    entry = make_entry([server.url("/w/tiny.mdl")])
    target = hub.cached_path(entry)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"garbage")
    with pytest.raises(ChecksumError, match="harnet download tiny-test"):
        hub.fetch(entry, offline=True)
    assert server.hits == {}


def test_registry_name_offline_and_missing():
    with pytest.raises(OfflineError, match="harnet download harnet30-c24-walmsley"):
        hub.fetch("harnet30-c24-walmsley", offline=True)
    with pytest.raises(ModelError, match="known names"):
        hub.fetch("no-such-model", offline=True)


def test_mirrors_are_tried_in_order(server):
    server.files["/bad/tiny.mdl"] = BAD
    server.files["/good/tiny.mdl"] = GOOD
    entry = make_entry([server.url("/missing/tiny.mdl"), server.url("/bad/tiny.mdl"), server.url("/good/tiny.mdl")])
    assert hub.fetch(entry, progress=False).read_bytes() == GOOD
    assert server.hits == {"/missing/tiny.mdl": 1, "/bad/tiny.mdl": 1, "/good/tiny.mdl": 1}
    assert_no_temp_files(entry)


def test_unreachable_mirrors_give_a_download_error(server):
    dead = FakeServer()
    dead_url = dead.url("/tiny.mdl")
    dead.close()  # connection refused from now on
    entry = make_entry([server.url("/missing/tiny.mdl"), dead_url])
    with pytest.raises(hub.DownloadError) as ei:
        hub.fetch(entry, progress=False)
    msg = str(ei.value)
    assert "HTTP 404" in msg and dead_url in msg and "harnet download tiny-test" in msg
    assert isinstance(ei.value, OfflineError)
    assert not hub.cached_path(entry).exists()
    assert_no_temp_files(entry)


def test_truncated_transfer_is_not_cached(server):
    server.files["/w/tiny.mdl"] = GOOD
    server.truncate["/w/tiny.mdl"] = 1000
    entry = make_entry([server.url("/w/tiny.mdl")])
    with pytest.raises(hub.DownloadError, match="IncompleteRead"):
        hub.fetch(entry, progress=False)
    assert not hub.cached_path(entry).exists()
    assert_no_temp_files(entry)


def test_progress_bar_only_when_asked(server, capsys):
    server.files["/w/tiny.mdl"] = GOOD
    entry = make_entry([server.url("/w/tiny.mdl")])
    hub.fetch(entry, progress=False)
    assert capsys.readouterr().err == ""
    hub.cached_path(entry).unlink()
    hub.fetch(entry, progress=True)
    err = capsys.readouterr().err
    assert "tiny.mdl" in err and "293k" in err.lower()  # 300,000 bytes in KiB


def test_cli_download_offline_names_the_fix(monkeypatch, capsys):
    """(Filling the cache for offline use is tested in test_machine_faults.py, the HPC recipe.)"""
    from harnet_cli.main import main

    # offline and missing through the CLI: exit 1 and the fix on one line
    monkeypatch.setenv("HARNET_OFFLINE", "1")
    assert main(["download", "harnet5"]) == 1
    assert "harnet download harnet5" in capsys.readouterr().err


def test_lock_wait_reuses_the_other_process_file(server, capsys):
    """While another holder has the lock, fetch waits, then reuses the verified file without a request."""
    from filelock import FileLock

    server.files["/w/tiny.mdl"] = GOOD
    entry = make_entry([server.url("/w/tiny.mdl")])
    target = hub.cached_path(entry)
    target.parent.mkdir(parents=True)
    lock = FileLock(str(target.parent / f".{target.name}.lock"))
    lock.acquire()
    result: dict = {}

    def worker():
        result["path"] = hub.fetch(entry, progress=False)

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(1.5)  # fetch is now waiting for the lock
    assert t.is_alive()
    tmp = target.parent / f".tiny.mdl{TMP_MARK}other"
    tmp.write_bytes(GOOD)
    os.replace(tmp, target)  # what the other process does after verifying
    lock.release()
    t.join(10)
    assert result["path"] == target and server.hits == {}
    assert "waiting for another process downloading tiny-test" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Hugging Face repos, from a cache laid out on disk as huggingface_hub writes it

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def build_hf_cache(root: Path, repo: str = "org/tiny", files=None, refs=("main",)) -> Path:
    files = files if files is not None else {"config.json": b'{"arch": "harnet5"}', "model.safetensors": b"weights"}
    repo_dir = root / "hub" / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    for name, data in files.items():
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    (repo_dir / "refs").mkdir()
    for ref in refs:
        (repo_dir / "refs" / ref).write_text(COMMIT)
    return snap


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hfhome"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return home


def test_parse_hf_spec():
    assert hub.parse_hf_spec("hf://org/repo") == ("org/repo", None)
    assert hub.parse_hf_spec("hf://org/re.po-1@v1.2") == ("org/re.po-1", "v1.2")
    for bad in ("hf://org", "hf://org/repo/extra", "org/repo", "hf://org/repo@", "hf://org/repo@a@b"):
        with pytest.raises(ModelError, match="hf://org/repo"):
            hub.parse_hf_spec(bad)


@pytest.mark.parametrize("revision", [None, "main", "v1", COMMIT])
def test_snapshot_from_cache_offline_argument(hf_home, revision):
    snap = build_hf_cache(hf_home, refs=("main", "v1"))
    spec = "hf://org/tiny" + (f"@{revision}" if revision else "")
    p = hub.snapshot(spec, offline=True)
    assert p.resolve() == snap.resolve()
    assert (p / "config.json").read_bytes() == b'{"arch": "harnet5"}'


def test_snapshot_from_cache_with_hf_hub_offline_env(hf_home, monkeypatch):
    snap = build_hf_cache(hf_home)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.snapshot("hf://org/tiny").resolve() == snap.resolve()
    assert hub.download("hf://org/tiny").resolve() == snap.resolve()


def test_snapshot_offline_and_missing_names_the_fix(hf_home, monkeypatch):
    build_hf_cache(hf_home)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec in ("hf://org/other", "hf://org/tiny@v9"):
        with pytest.raises(OfflineError) as ei:
            hub.snapshot(spec)
        msg = str(ei.value)
        assert f"harnet download {spec}" in msg and "HF_HOME" in msg and "HF_HUB_OFFLINE" in msg
        assert not isinstance(ei.value, hub.DownloadError)


def test_snapshot_without_config_is_not_a_model(hf_home):
    build_hf_cache(hf_home, files={"README.md": b"# a card"})
    with pytest.raises(ModelError, match="no config.json"):
        hub.snapshot("hf://org/tiny", offline=True)
