"""Two real processes fetching one model into an empty cache at once, 20 times in a row.

Each iteration uses a fresh, empty cache. Both processes must end with the same verified file,
the server must see at most two downloads, and no temporary file may remain. The server sends
the file slowly enough (in small, paced chunks) that the two fetches overlap.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import select
import subprocess
import sys
import threading
import time

from harnet._fileio import TMP_MARK

DATA = os.urandom(96 * 1024)
SHA256 = hashlib.sha256(DATA).hexdigest()
ITERATIONS = 20

WORKER = r"""
import json, os, sys
from harnet import hub
from harnet.registry import WeightsEntry
entry = WeightsEntry(**json.loads(sys.argv[1]))
print("ready", flush=True)
for line in sys.stdin:
    os.environ["HARNET_CACHE"] = line.strip()
    try:
        p = hub.fetch(entry, progress=False)
        print(json.dumps({"path": str(p), "sha256": hub.hash_file(p, "sha256")}), flush=True)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
"""


class SlowServer:
    def __init__(self, data: bytes) -> None:
        self.downloads = 0
        self._mu = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with server._mu:
                    server.downloads += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                step = 16 * 1024
                for i in range(0, len(data), step):  # ~6 chunks, ~25 ms per transfer
                    self.wfile.write(data[i : i + step])
                    self.wfile.flush()
                    time.sleep(0.004)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/tiny.mdl"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _readline(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"worker {proc.pid} gave no answer in {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"worker {proc.pid} exited: {proc.stderr.read()}")
    return line


def test_two_processes_fetch_one_model_20_times(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HARNET_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server = SlowServer(DATA)
    spec = {
        "name": "tiny-concurrent",
        "kind": "backbone",
        "arch": "harnet10",
        "window_sec": 10,
        "labels": [],
        "urls": [server.url()],
        "filename": "tiny.mdl",
        "checksum_algo": "sha256",
        "checksum": SHA256,
        "size": len(DATA),
        "format": "ssl-mdl",
        "licence": "test",
        "licence_url": "https://example.org/licence",
        "description": "test file.",
        "source_info": "test server",
        "citation": "none",
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert _readline(p).strip() == "ready"
        per_iteration = []
        for i in range(ITERATIONS):
            cache = tmp_path / f"cache{i}"
            before = server.downloads
            for p in procs:  # both start at once on an empty cache
                p.stdin.write(f"{cache}\n")
                p.stdin.flush()
            answers = [json.loads(_readline(p)) for p in procs]
            for a in answers:
                assert "error" not in a, a
            final = cache / "downloads" / "tiny-concurrent" / "tiny.mdl"
            assert {a["path"] for a in answers} == {str(final)}
            assert [a["sha256"] for a in answers] == [SHA256, SHA256]
            assert final.read_bytes() == DATA
            leftovers = [f.name for f in final.parent.iterdir() if TMP_MARK in f.name]
            assert leftovers == [], f"iteration {i}: temporary files left: {leftovers}"
            per_iteration.append(server.downloads - before)
        assert all(1 <= n <= 2 for n in per_iteration), per_iteration
        # the lock makes the second process wait and reuse the first one's verified file
        assert per_iteration == [1] * ITERATIONS, per_iteration
    finally:
        for p in procs:
            p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        server.close()
