"""What `harnet predict` shows on the console for one recording: a progress bar and warnings.

The library prints nothing: it calls ``progress(stage, done, total)`` (``"read"`` in bytes, then
``"windows"``) and records warnings in ``info``; this module renders both on stderr.
"""

from __future__ import annotations

import sys
from typing import Any

import click


class ProgressBar:
    """tqdm bars on stderr, one per stage: bytes read (with MB/s), then windows classified
    (windows/s); each shows the rate and the time left. Shown only when ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            from tqdm import tqdm

            read = stage == "read"
            self.bar = tqdm(total=total or None, desc="reading " if read else "classify", unit="B" if read else " windows",
                            unit_scale=read, unit_divisor=1024 if read else 1000, file=sys.stderr, dynamic_ncols=True,
                            leave=False, mininterval=0.2)
            self.stage = stage
        if total and total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None


def show_bar(quiet: bool) -> bool:
    """A bar only on a terminal, and never with --quiet."""
    return not quiet and sys.stderr.isatty()


def warnings_of(info: dict[str, Any]) -> list[str]:
    """Every warning recorded in info.json, once each, in order: the reader's and the pipeline's
    (``reader.Warnings``) and a skipped gravity calibration with its reason (``CalibNote``)."""
    out = list((info.get("reader") or {}).get("Warnings") or [])
    note = info.get("CalibNote")
    if note and info.get("CalibOK") == 0 and not any(note in w for w in out):
        out.append(f"gravity calibration {note}")
    return list(dict.fromkeys(out))


def print_warnings(info: dict[str, Any]) -> None:
    for w in warnings_of(info):
        click.echo(f"harnet: warning: {w}", err=True)


def print_batch_warnings(path: str, outdir: str) -> None:
    """The warnings of one recording written by the batch runner into ``outdir/<name>/``."""
    import json
    from pathlib import Path

    from harnet.batch import recording_names

    if not Path(path).is_file():
        return
    info = Path(outdir) / recording_names([path], outdir)[0] / "info.json"
    if info.is_file():
        print_warnings(json.loads(info.read_text()))
