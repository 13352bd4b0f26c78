"""Device files through actipy (which runs a Java reader): ``read_device(..., reader="actipy")``.

harnet reads every format with its own readers (no Java); this module is the opt-in
alternative (``harnet predict --reader actipy``) and the reference the parity tests compare
against. It reads ``.cwa``/``.cwa.gz``, ``.gt3x`` and GENEActiv ``.bin``.

actipy is called with every processing step off (no filter, calibration, non-wear or
resampling), so the samples are the device's own. GT3X idle-sleep seconds carry no samples and
stay gaps. Files are checked before Java starts (empty, not a zip, zip without ``log.bin``), the
Java runtime is checked once, and whatever actipy or Java print is captured: on success it goes
into ``info["Warnings"]``, on failure its gist goes into one :class:`InputError` line instead
of a stack trace on the terminal.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import warnings as _warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harnet.errors import HarnetError, InputError, JavaMissingError
from harnet.io.recording import Recording

JAVA_HELP = (
    "--reader actipy needs a Java runtime (8 or newer), which actipy uses; install one, e.g. "
    "`sudo apt-get install default-jre-headless`, `conda install -c conda-forge openjdk`, or "
    "`brew install openjdk`, then retry; or drop --reader actipy: harnet's own readers need no Java"
)

# actipy info keys carried over as they are (times and counts are recomputed by read_device)
CARRY = ("Device", "DeviceID", "ReadOK", "ReadErrors", "SampleRate", "NumTicks", "NumInterrupts")


@functools.lru_cache(maxsize=1)
def _java_ok(java: str) -> bool:
    try:
        r = subprocess.run([java, "-version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def java_available() -> bool:
    """True when a ``java`` executable is on PATH and ``java -version`` succeeds."""
    java = shutil.which("java")
    return bool(java) and _java_ok(java)


def require_java(path: Path) -> None:
    if not java_available():
        raise JavaMissingError(f"{path}: {JAVA_HELP}")


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Send this process's stdout/stderr (file descriptors, so Java's too) to a temp file."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        saved = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(tmp.fileno(), fd)
        except OSError:  # no real descriptors (embedded interpreters): capture nothing
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            saved = []
        try:
            yield lines
        finally:
            for s in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    s.flush()
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            tmp.seek(0)
            text = tmp.read(1 << 20).decode("utf-8", "replace")
            lines.extend(ln.strip() for ln in text.splitlines() if ln.strip())


def _gist(lines: list[str], exc: BaseException) -> str:
    """The most telling line of a failure: a Java exception message or the Python error."""
    for ln in lines:
        if ("Exception" in ln or "Error" in ln) and not ln.startswith("at "):
            return ln[:200]
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, subprocess.CalledProcessError):
        msg = f"the Java reader exited with status {exc.returncode}"
    return f"{type(exc).__name__}: {msg}"[:200]


def check_file(path: Path) -> str:
    """Cheap checks before Java starts; returns the kind ('gt3x', 'bin' or 'cwa')."""
    name = path.name.lower()
    if name.endswith(".agdc"):
        raise InputError(f"{path}: actipy does not read .agdc files; drop --reader actipy (harnet's own reader reads them)")
    kind = "gt3x" if name.endswith(".gt3x") else "cwa" if name.endswith((".cwa", ".cwa.gz")) else "bin"
    if path.stat().st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes); re-download the recording from the device software")
    if kind == "gt3x":
        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: is not an ActiGraph .gt3x file (not a zip archive); check the file or export it again with ActiLife")
        try:
            with zipfile.ZipFile(path) as z:
                members = {n.lower() for n in z.namelist()}
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{path}: is a damaged .gt3x zip ({exc}); export it again with ActiLife") from None
        if bad is not None:
            raise InputError(f"{path}: is a damaged .gt3x zip (member {bad} fails its CRC); export it again with ActiLife")
        if "log.bin" not in members and "activity.bin" not in members:
            raise InputError(
                f"{path}: has no log.bin (nor the older activity.bin), so it holds no samples; "
                "it is not a complete GT3X file: export it again with ActiLife"
            )
    elif kind == "bin":
        with open(path, "rb") as f:
            head = f.read(256)
        if head.startswith(b"PK"):
            raise InputError(f"{path}: is a zip archive, not a GENEActiv .bin; unzip it or check the file type")
    return kind


def read_actipy(path: str | os.PathLike) -> Recording:
    """Read a ``.cwa``/``.cwa.gz``, ``.gt3x`` or GENEActiv ``.bin`` file with actipy, all processing off."""
    path = Path(path)
    kind = check_file(path)
    require_java(path)
    import actipy

    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            with _captured_output() as out:
                data, ainfo = actipy.read_device(
                    str(path),
                    lowpass_hz=None,
                    calibrate_gravity=False,
                    detect_nonwear=False,
                    resample_hz=None,
                    verbose=False,
                )
        except HarnetError:
            raise
        except MemoryError:
            raise
        except Exception as exc:  # actipy/Java failures, translated to one line
            raise InputError(
                f"{path}: actipy could not read this .{kind} file ({_gist(out, exc)}); check that it is a complete "
                "recording from the device (export or download it again)"
            ) from None
    noise = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
    msgs = [*out, *(str(w.message).splitlines()[0] for w in caught if not issubclass(w.category, noise))]
    missing = [c for c in ("x", "y", "z") if c not in data.columns]
    if missing:
        raise InputError(f"{path}: actipy returned no {', '.join(missing)} columns; the file is not a supported accelerometer recording")
    time = np.asarray(data.index.values).astype("datetime64[ns]", copy=False)
    xyz = np.empty((len(data), 3), np.float32)
    for j, c in enumerate(("x", "y", "z")):
        xyz[:, j] = data[c].to_numpy()
    del data
    info: dict[str, Any] = {"Filename": str(path), "Filesize(MB)": round(path.stat().st_size / 1e6, 1)}
    info.update({k: ainfo[k] for k in CARRY if k in ainfo})
    info["Warnings"] = [f"actipy: {m}" for m in dict.fromkeys(msgs)]
    return Recording(time, xyz, info)
