"""The console of `harnet predict` for one recording: progress bar on a terminal only, every
info.json warning printed once, --quiet, and --debug after the subcommand."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

import pytest

from harnet.io import write_cwa
from harnet.io.cwa_writer import truncate
from harnet_cli.main import main

from _devicefiles import wrist_like as moving

FS = 25  # the rate wrist_like draws at by default


@pytest.fixture
def truncated_cwa(tmp_path):
    p = write_cwa(tmp_path / "cut.cwa", "2024-01-10 10:00:00", moving(FS * 600), fs=FS)
    truncate(p, 200)  # ends inside its last block: a reader warning
    return p


def test_every_info_warning_is_printed_once_one_line_each(truncated_cwa, tmp_path, model30_dir, capsys):
    out = tmp_path / "o" / "s.csv"
    assert main(["predict", str(truncated_cwa), "--model", str(model30_dir), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    info = json.loads(out.with_name("s-info.json").read_text())
    recorded = info["reader"]["Warnings"]
    assert any("ends inside a block" in w for w in recorded)
    printed = [ln[len("harnet: warning: "):] for ln in err.splitlines() if ln.startswith("harnet: warning: ")]
    for w in recorded:
        assert printed.count(w) == 1, (w, err)
    # a 10-minute recording is too short to calibrate: said once, with the reason from info.json
    assert info["CalibOK"] == 0 and info["CalibNote"]
    assert printed.count(f"gravity calibration {info['CalibNote']}") == 1
    assert len(printed) == len(set(printed))
    # not a terminal: no progress bar
    assert "\r" not in err and "classify" not in err


def test_quiet_prints_nothing(truncated_cwa, tmp_path, model30_dir, capsys):
    out = tmp_path / "o" / "s.csv"
    assert main(["predict", str(truncated_cwa), "--model", str(model30_dir), "--out", str(out), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_debug_after_the_subcommand(tmp_path, model30_dir):
    from harnet.errors import InputError

    bad = tmp_path / "random.cwa"
    bad.write_bytes(os.urandom(4096))
    args = [str(bad), "--model", str(model30_dir), "--out", str(tmp_path / "o.csv")]
    with pytest.raises(InputError, match="not an Axivity CWA"):
        main(["predict", "--debug", *args])
    with pytest.raises(InputError):
        main(["predict", *args, "--debug"])
    assert main(["predict", *args]) == 1  # without it: the one-line error


def _run_on_a_pty(cmd: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal (stdout a pipe); return (rc, what the tty got)."""
    import pty

    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal's size
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], timeout)
        if not r:
            p.kill()
            break
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    rc = p.wait(timeout=30)
    p.stdout.close()
    return rc, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_progress_bar_on_a_terminal_only(tmp_path, model30_dir):
    cwa = write_cwa(tmp_path / "rec.cwa", "2024-01-10 10:00:00", moving(FS * 1200), fs=FS)
    base = [sys.executable, "-m", "harnet_cli.main", "predict", str(cwa), "--model", str(model30_dir), "--backend", "torch"]
    rc, tty = _run_on_a_pty(base + ["--out", str(tmp_path / "a" / "s.csv")])
    assert rc == 0, tty
    # reading in bytes, then windows classified, each with its rate and the time left
    assert "reading" in tty and "B/s" in tty, tty
    assert "classify" in tty and "windows/s" in tty, tty
    assert "<" in tty  # tqdm's [elapsed<left]
    rc, tty = _run_on_a_pty(base + ["--out", str(tmp_path / "b" / "s.csv"), "-q"])
    assert rc == 0 and tty.strip() == "", tty
