"""Stack the per-recording minute, hour, sleep and bouts tables of a batch into cohort files.

``harnet predict ... --outdir DIR`` leaves ``DIR/<name>/minutes.parquet`` (or ``.csv``),
``hours.*``, ``sleep.csv`` and ``bouts.csv``. :func:`stack_tables` writes one file per kind with a
first column ``Participant`` (the folder name), reading and writing one recording at a time
(parquet through a row-group writer), so a cohort of thousands never sits in memory at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

__all__ = ["TABLE_KINDS", "stack_tables", "stacked_paths"]

#: Table kind -> file names a recording folder may hold it under (first found wins).
TABLE_KINDS: dict[str, tuple[str, ...]] = {
    "minutes": ("minutes.parquet", "minutes.csv"),
    "hours": ("hours.parquet", "hours.csv"),
    "sleep": ("sleep.csv",),
    "bouts": ("bouts.csv",),
}
_EXT = {"minutes": ".parquet", "hours": ".parquet", "sleep": ".csv", "bouts": ".csv"}


def stacked_paths(out: str | os.PathLike) -> dict[str, Path]:
    """``--out cohort.csv`` -> ``cohort-minutes.parquet``, ``cohort-hours.parquet``,
    ``cohort-sleep.csv``, ``cohort-bouts.csv`` beside it."""
    o = Path(out)
    name = o.name
    for suf in (".csv.gz", ".csv", ".parquet"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return {k: o.with_name(f"{name}-{k}{ext}") for k, ext in _EXT.items()}


def _read(p: Path):
    import pandas as pd

    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    df = pd.read_csv(p)
    return df


def stack_tables(outdir: str | os.PathLike, out: str | os.PathLike) -> dict[str, Path]:
    """Write the stacked tables (see module doc); returns the paths written (kinds no recording
    has are skipped). Recordings must agree on columns (same model and options) and, for the
    parquet tables, on the time zone of ``time``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._fileio import atomic_path

    d = Path(outdir)
    folders = sorted(p.parent for p in d.glob("*/info.json") if not p.parent.name.startswith("."))
    written: dict[str, Path] = {}
    for kind, target in stacked_paths(out).items():
        srcs = []
        for f in folders:
            for n in TABLE_KINDS[kind]:
                if (f / n).is_file():
                    srcs.append((f.name, f / n))
                    break
        if not srcs:
            continue
        with atomic_path(target) as tmp:
            writer = None
            cols = None
            header = True
            for name, src in srcs:
                df = _read(src)
                df.insert(0, "Participant", name)
                if cols is None:
                    cols = list(df.columns)
                elif list(df.columns) != cols:
                    raise InputError(
                        f"{src}: columns differ from the first recording's ({sorted(set(df.columns) ^ set(cols))}); "
                        "stack outputs of one model and one set of options"
                    )
                if target.suffix == ".parquet":
                    t = pa.Table.from_pandas(df, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, t.schema)
                    elif not t.schema.equals(writer.schema):
                        try:
                            t = t.cast(writer.schema)
                        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as e:
                            raise InputError(
                                f"{src}: column types differ from the first recording's ({e}); "
                                "were they made with different --timezone? stack them separately"
                            ) from None
                    writer.write_table(t)
                else:
                    df.to_csv(tmp, index=False, mode="w" if header else "a", header=header)
                    header = False
            if writer is not None:
                writer.close()
        written[kind] = target
    return written
