"""`harnet predict`: device files to activity labels and daily summaries."""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys
from typing import Any, Sequence

import click

from harnet.arch import DEFAULT_MODEL
from harnet_cli import console, predict_opts


def _check_timezone(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A bad --timezone is a usage error (exit 2), found before any file is read."""
    if value is None:
        return value
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{value!r} is not an IANA time zone; use a name such as Europe/London or UTC") from None
    return value


def _check_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --start/--end that is not a date-time is a usage error (exit 2)."""
    if value is None:
        return value
    import pandas as pd

    try:
        pd.Timestamp(value)
    except (ValueError, TypeError):
        raise click.BadParameter(f"{value!r} is not a date-time; use ISO format like 2024-03-01 or 2024-03-01T12:00") from None
    return value


def _check_duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A duration such as 30min, 1h, 90s or 0.5H -> seconds (usage error otherwise)."""
    if value is None:
        return None
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|min|m|h|d)?\s*", value.lower())
    if not m:
        raise click.BadParameter(f"{value!r} is not a duration; use e.g. 30min, 1h or 90s")
    mult = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, None: 60}[m.group(2)]
    return float(m.group(1)) * mult
def _check_out(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--out is one file; a folder there means --outdir was meant (a usage error, exit 2)."""
    import os

    if value is not None and os.path.isdir(value):
        raise click.BadParameter(f"{value!r} is a folder; --out takes the summary CSV's file path, use --outdir DIR to write into a folder")
    return value


@click.command(context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=False)
@click.option("--demo", is_flag=True, help="Generate a 26-hour synthetic Axivity recording (harnet.synth) and predict it.")
@click.option("--out", "out", type=click.Path(), callback=_check_out, help="Daily summary CSV; the per-window series and info.json go beside it.")
@click.option("-o", "--outdir", type=click.Path(file_okay=False),
              help="Write each recording's outputs into DIR/<name>/. Without --out and --outdir: outputs/<name>/ (as actinet).")
@click.option("--windows-out", type=click.Path(dir_okay=False), help="Per-window series path (.parquet or .csv) instead of the default beside --out.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Write a PNG: one row per day, classes as bands, ENMO (mg) on top, sleep periods marked. "
              "With --outdir, a file name written into each recording's folder (e.g. days.png).")
@click.option("--model", default=DEFAULT_MODEL, help="Registry name (see `harnet models`), model directory or hf://org/repo[@rev].")
@click.option("--backend", type=click.Choice(["auto", "torch", "onnx", "onnx-winograd", "onnx-int8"]), default="auto",
              help="Inference backend; auto: ONNX Runtime (Winograd fp32) on CPU, torch on a GPU.")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32",
              help="Arithmetic: fp32 (exact) or int8, an opt-in ONNX Runtime graph made once per model that keeps "
                   ">= 99.5 % of the fp32 labels after the HMM on held-out days (docs/performance.md).")
@click.option("--device", default=None, help="torch device for the torch backend (cpu, cuda, cuda:1).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for inference (default: all cores).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Windows per inference batch.")
@click.option("--no-hmm", is_flag=True, help="Do not smooth labels with the model's HMM.")
@click.option("--timezone", default=None, callback=_check_timezone, help="IANA time zone (e.g. Europe/London): aware times, DST-correct days.")
@click.option("--start", default=None, callback=_check_time, help="Ignore data before this time (ISO, local).")
@click.option("--end", default=None, callback=_check_time, help="Ignore data from this time on (ISO, local).")
@click.option("--exclude-first-day", is_flag=True, help="Drop the first calendar day from the summaries.")
@click.option("--exclude-last-day", is_flag=True, help="Drop the last calendar day from the summaries.")
@click.option("--min-wear-per-day", type=click.FloatRange(min=0, max=25), default=16.0,
              help="Hours of wear for a day (and a noon-to-noon night) to count as valid (GGIR's 16 h); a day without wear never is.")
@click.option("--cutpoints", default="hildebrand",
              help="Intensity bands: a named set (hildebrand, vahaypya2015) or ENMO thresholds in mg 'a,b' or 'a,b,c'.")
@click.option("--single-sleep-block", is_flag=True, help="Keep only the main sleep period of each noon-to-noon night; other sleep becomes sedentary.")
@click.option("--require-sleep-above", default=None, callback=_check_duration,
              help="Sleep runs shorter than this (e.g. 30min, 1h) become sedentary.")
@click.option("--table-format", type=click.Choice(["parquet", "csv"]), default="parquet", help="Format of the minute and hour tables.")
@click.option("--calibrate/--no-calibrate", default=None, help="Gravity calibration (default: as the model was trained).")
@click.option("--detect-nonwear/--no-detect-nonwear", default=None, help="Non-wear detection (default: as the model was trained).")
@click.option("--nonwear-patience", type=click.FloatRange(min=1), default=90.0, help="Minutes of stillness counted as non-wear.")
@click.option("--nonwear-std", type=click.FloatRange(min=0.1), default=15.0, help="Stillness threshold: every axis' SD below this (mg) in 10-s windows.")
@click.option("--lowpass", "lowpass", default="model", help="Anti-alias low-pass before resampling in Hz, 'none', or 'model' (as trained).")
@click.option("--time-col", default=None, help="CSV/parquet: time column name or index.")
@click.option("--xyz-cols", default=None, help="CSV/parquet: x,y,z column names or indices, comma-separated.")
@click.option("--time-format", default=None, help="CSV/parquet: strftime format, or unix_s / unix_ms.")
@click.option("--units", type=click.Choice(["g", "m/s2"]), default="g", help="CSV/parquet: acceleration units.")
@click.option("--sample-rate", type=click.FloatRange(min=1), default=None, help="Override the sample rate (Hz).")
@click.option("--reader", "device_reader", type=click.Choice(["auto", "actipy"]), default="auto",
              help="Device files: auto = harnet's own readers (no Java); actipy = actipy's Java readers (needs Java 8+).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Batch: local worker processes (default 1); each gets CPUs/workers threads.")
@click.option("--pattern", default=None, help="Batch: glob for files inside folder inputs, e.g. '*.cwa.gz' or '**/*.cwa' (default: every format harnet reads, recursively).")
@click.option("--force", is_flag=True, help="Batch: redo recordings whose outputs are already done.")
@click.option("--scheduler", default=None, help="Batch: run on an existing Dask cluster (tcp://HOST:PORT); needs harnet[dask].")
@click.option("--cluster", type=click.Choice(["slurm", "pbs", "sge"]), default=None, help="Batch: start Dask workers as batch jobs (dask-jobqueue).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, help="--cluster: number of jobs (one Dask worker each).")
@click.option("--job-cores", type=click.IntRange(min=1), default=4, help="--cluster: cores per job (recordings at a time per job).")
@click.option("--job-memory", default="16GB", help="--cluster: memory per job.")
@click.option("--job-walltime", default="04:00:00", help="--cluster: wall time per job.")
@click.option("--job-queue", default=None, help="--cluster: queue / partition.")
@click.option("--job-account", default=None, help="--cluster: account or project to charge.")
@click.option("--job-extra", multiple=True, help="--cluster: extra scheduler directive (repeatable), e.g. '--qos=long'.")
@click.option("--job-prologue", multiple=True, help="--cluster: shell line run before each worker (repeatable), e.g. 'module load python'.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("-v", "--verbose", is_flag=True, help="Report each stage.")
@predict_opts.options
@click.pass_context
def predict(ctx: click.Context, inputs, demo, out, outdir, windows_out, plot, model, backend, precision, device, threads, batch_size,
            no_hmm, timezone, start, end, exclude_first_day, exclude_last_day, min_wear_per_day, cutpoints,
            single_sleep_block, require_sleep_above, table_format, calibrate,
            detect_nonwear, nonwear_patience, nonwear_std, lowpass, time_col, xyz_cols, time_format, units,
            sample_rate, device_reader, quiet, verbose, **batch) -> None:
    """Classify activity in device files and write daily summaries.

    INPUTS: Axivity .cwa/.cwa.gz, ActiGraph .gt3x/.agdc, GENEActiv .bin (harnet's own readers,
    no Java; --reader actipy uses actipy's, which need Java), ActiLife raw CSV exports (recognised
    by their header), or .csv/.csv.gz/.parquet tables.
    Outputs: --out PATH.csv, or DIR/<name>/ with -o/--outdir DIR (default: outputs/<name>/).

    The default model is harnet30-c24-walmsley: harnet30 fine-tuned on Capture-24 with the
    Walmsley labels (sleep, sedentary, light, moderate-vigorous), published with the asleep
    tool. Its weights are under the University of Oxford Academic Use Licence (non-commercial
    research only); harnet downloads them from their published source on first use.

    Exit codes: 0 done, 1 an input or model problem (one line, --debug for the traceback),
    2 a usage error.
    """
    from harnet.outputs import output_paths, write_outputs
    from harnet.pipeline import PredictOptions, predict_file

    if demo:
        if inputs:
            raise click.UsageError("--demo makes its own input; give no INPUTS with it")
        if not out:
            raise click.UsageError("--demo needs --out PATH.csv")
        from harnet.synth import write_scripted_cwa

        demo_path = pathlib.Path(out).with_name("harnet-demo.cwa")
        demo_path.parent.mkdir(parents=True, exist_ok=True)
        if not quiet:
            click.echo(f"harnet: writing a synthetic 26-hour recording to {demo_path}", err=True)
        with _demo_removed_on_failure(demo_path):
            write_scripted_cwa(demo_path)
        inputs = (str(demo_path),)
    if not inputs:
        raise click.UsageError("give at least one input file (or --demo)")
    if len(inputs) > 1 and out and not outdir:
        raise click.UsageError("several inputs need --outdir DIR (each recording gets DIR/<name>/), not --out")
    if not out and not outdir:
        outdir = "outputs"  # actinet's default: outputs/<recording name>/
    if start is not None and end is not None:
        import pandas as pd

        a, b = pd.Timestamp(start), pd.Timestamp(end)
        if (a.tzinfo is None) == (b.tzinfo is None) and a >= b:  # mixed offsets: left to the library
            raise click.BadParameter(f"--start {start} is not before --end {end}; swap them or fix one", param_hint="--start")
    if lowpass in ("model",):
        lp = "model"
    elif lowpass.lower() in ("none", "off", "0"):
        lp = None
    else:
        try:
            lp = float(lowpass)
        except ValueError:
            raise click.BadParameter(f"{lowpass!r} is not a number, 'none' or 'model'", param_hint="--lowpass") from None
    reader: dict = {}
    if time_col is not None:
        reader["time_col"] = int(time_col) if time_col.isdigit() else time_col
    if xyz_cols is not None:
        cols = [c.strip() for c in xyz_cols.split(",")]
        if len(cols) != 3:
            raise click.BadParameter("give three columns, e.g. x,y,z or 1,2,3", param_hint="--xyz-cols")
        reader["xyz_cols"] = tuple(int(c) if c.isdigit() else c for c in cols)
    if time_format is not None:
        reader["time_format"] = time_format
    if units != "g":
        reader["units"] = units
    if sample_rate is not None:
        reader["sample_rate"] = sample_rate
    if device_reader != "auto":
        reader["reader"] = device_reader
    popts = dict(exclude_first_day=exclude_first_day, exclude_last_day=exclude_last_day, min_wear_per_day=min_wear_per_day)
    given = ctx.get_parameter_source("min_wear_per_day") is not click.core.ParameterSource.DEFAULT
    force_download = predict_opts.apply(batch, reader, popts, min_wear_given=given)
    opts = PredictOptions(
        model=model, backend=backend, precision=precision, device=device, threads=threads, batch_size=batch_size, hmm=not no_hmm,
        timezone=timezone, start=start, end=end, calibrate=calibrate,
        detect_nonwear=detect_nonwear, nonwear_patience_min=nonwear_patience, nonwear_std_mg=nonwear_std,
        lowpass_hz=lp, reader=reader, cutpoints=cutpoints, single_sleep_block=single_sleep_block,
        require_sleep_above_s=require_sleep_above, **popts,
    )
    from harnet.measures.intensity import parse_cutpoints

    parse_cutpoints(cutpoints)  # a bad --cutpoints is an input error before any file is read
    if precision != "fp32":
        from harnet.predictor import check_precision

        check_precision(precision, backend, device)  # --precision int8 --backend torch: refused before reading
    if force_download:
        _force_download(model, quiet)
    if len(inputs) == 1 and out:
        from harnet.outputs import check_output_paths

        path = inputs[0]
        paths = output_paths(out=out, table_format=table_format)
        check_output_paths(paths, plot=plot, windows_path=windows_out)  # before reading anything
        if not quiet:
            click.echo(f"harnet: reading {path}", err=True)
        bar = console.ProgressBar(console.show_bar(quiet))
        with _demo_removed_on_failure(pathlib.Path(path) if demo else None):
            try:
                res = predict_file(path, options=opts, progress=bar)
            finally:
                bar.close()
            paths = write_outputs(res, paths, plot=plot, windows_path=windows_out)
        if not quiet:
            console.print_warnings(res.info)
            _report(res, paths, verbose)
        return
    from harnet.batch import JobOptions  # many inputs: see harnet.batch

    if windows_out:
        raise click.UsageError("--windows-out applies to one input with --out, not to --outdir batches")
    if plot is not None:
        if pathlib.Path(plot).name != plot or plot in ("", ".", ".."):
            raise click.UsageError(f"with --outdir, --plot is a file name for each recording's folder (e.g. days.png), not the path {plot!r}")
        batch["plot"] = plot
    job = JobOptions(jobs=batch.pop("jobs"), cores=batch.pop("job_cores"), memory=batch.pop("job_memory"),
                     walltime=batch.pop("job_walltime"), queue=batch.pop("job_queue"), account=batch.pop("job_account"),
                     extra=batch.pop("job_extra"), prologue=batch.pop("job_prologue"))
    code = _run_batch(inputs, outdir=outdir, options=opts, ctx_obj=ctx.obj, quiet=quiet, job=job, **batch)
    if len(inputs) == 1 and not quiet:  # one recording into DIR/<name>/: its warnings too
        console.print_batch_warnings(inputs[0], outdir)
    if code:
        ctx.exit(code)


def _force_download(model: str, quiet: bool) -> None:
    """--force-download: fetch a registry model's weights again before anything is read."""
    from harnet import hub, registry

    if model.startswith("hf://") or model not in registry.names():
        raise click.UsageError(f"--force-download applies to registry models (see `harnet models`), not {model!r}")
    hub.download(model, progress=None if not quiet else False, force=True)
@contextlib.contextmanager
def _demo_removed_on_failure(demo_path):
    """A demo run that fails (weights unreachable, Ctrl-C...) leaves no demo recording behind."""
    try:
        yield
    except BaseException:
        if demo_path is not None:
            demo_path.unlink(missing_ok=True)
        raise


def _report(res, paths, verbose: bool) -> None:
    info = res.info
    for note in info.get("Notes") or ():
        click.echo(f"harnet: note: {note}", err=True)
    click.echo(
        f"harnet: {len(res.windows)} windows, {info.get('ValidWindows', 0)} classified, "
        f"wear {info.get('WearTime(days)', float('nan')):.2f} days",
        err=True,
    )
    if verbose:
        for k, v in info.get("StageSeconds", {}).items():
            click.echo(f"  {k:<10} {v:8.2f} s", err=True)
    for k, p in paths.items():
        click.echo(f"  {k:<8} {p}", err=True)


def _run_batch(
    inputs: Sequence[str],
    *,
    outdir: str | os.PathLike | None,
    options: Any,
    ctx_obj: dict | None = None,
    quiet: bool = False,
    workers: int | None = None,
    pattern: str | None = None,
    force: bool = False,
    scheduler: str | None = None,
    cluster: str | None = None,
    job: Any = None,
    plot: str | None = None,
) -> int:
    """``harnet predict`` with several inputs or ``--outdir``: run the batch and report.

    The printing half of :func:`harnet.batch.process_batch` (which does the work).

    Returns 0 when every input was processed or already done; raises :class:`BatchFailed`
    (exit code 1) after a batch in which any input failed.
    """
    from harnet.batch import BatchFailed, dask_client, process_batch
    from harnet.errors import InputError
    from harnet.outputs import FAILURES_FILE

    if outdir is None:
        raise InputError("several inputs need --outdir DIR")
    debug = bool((ctx_obj or {}).get("debug"))
    if (scheduler or cluster) and workers is not None:
        raise InputError("--workers is for the local mode; with a Dask cluster size it there (--jobs, --job-cores)")
    if (scheduler or cluster):
        with dask_client(scheduler, cluster, job, quiet) as client:
            rep = process_batch(inputs, outdir, options, pattern=pattern, force=force, client=client, progress=not quiet,
                                plot=plot)
    else:
        rep = process_batch(inputs, outdir, options, workers=workers, pattern=pattern, force=force, progress=not quiet,
                            plot=plot)
    if not quiet or rep.failures:
        how = f"{rep.workers} worker(s) x {rep.threads} thread(s)" if rep.mode == "local" else "Dask"
        msg = (
            f"harnet: {rep.total} input(s): {len(rep.processed)} processed, {len(rep.skipped)} already done, "
            f"{len(rep.failures)} failed ({rep.seconds:.1f} s, {how}); outputs in {rep.outdir}"
        )
        print(msg, file=sys.stderr)
    for f in rep.failures:
        print(f"  failed: {f.reason if f.input in f.reason else f'{f.input}: {f.reason}'}", file=sys.stderr)
        if debug and f.traceback:
            print(f.traceback, file=sys.stderr)
    if rep.failures:
        raise BatchFailed(
            f"{len(rep.failures)} of {rep.total} input(s) failed; the others are done. Reasons: "
            f"{rep.outdir / FAILURES_FILE}; fix or remove those inputs and run the same command again"
        )
    return rep.exit_code
