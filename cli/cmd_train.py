"""`harnet prepare`, `harnet train`, `harnet evaluate`, `harnet push`: build your own classifier."""

from __future__ import annotations

from pathlib import Path

import click


def _train_options(f):
    """Options shared by `train` and `evaluate` (the fine-tuning recipe)."""
    opts = [
        click.option("--epochs", type=click.IntRange(min=1), default=20, help="Most epochs."),
        click.option("--patience", type=click.IntRange(min=1), default=5, help="Stop after this many epochs without a better validation loss."),
        click.option("--batch-size", type=click.IntRange(min=2), default=64, help="Windows per training batch."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, help="Adam (amsgrad) learning rate."),
        click.option("--augment/--no-augment", default=True, help="Random axis order and 3-D rotation of training windows."),
        click.option("--axis-swap/--no-axis-swap", default=True, help="Include the random axis order in the augmentation."),
        click.option("--max-rotation", type=click.FloatRange(min=0, max=180), default=180.0, help="Largest random rotation (degrees; 0: none)."),
        click.option("--val-frac", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.2, help="Share of training participants held out for early stopping and the HMM."),
        click.option("--hmm/--no-hmm", default=True, help="Fit HMM smoothing on the validation participants' predictions."),
        click.option("--seed", type=int, default=0, help="Seed of every random draw (same seed, same result)."),
        click.option("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, mps)."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default: torch's)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _topts(init: str, freeze: bool, kw: dict, progress: bool):
    from harnet.train.finetune import TrainOptions

    return TrainOptions(
        init=init, freeze=freeze, epochs=kw["epochs"], patience=kw["patience"], batch_size=kw["batch_size"],
        lr=kw["lr"], augment=kw["augment"], axis_swap=kw["axis_swap"], max_rotation_deg=kw["max_rotation"],
        val_frac=kw["val_frac"], hmm=kw["hmm"], seed=kw["seed"], device=kw["device"], threads=kw["threads"],
        progress=progress,
    )


def _progress_default(progress: bool | None) -> bool:
    import sys

    return sys.stderr.isatty() if progress is None else progress


def _xyz(xyz_cols: str) -> list[str]:
    cols = [c.strip() for c in xyz_cols.split(",")]
    if len(cols) != 3:
        raise click.BadParameter("give three comma-separated columns", param_hint="--xyz-cols")
    return cols


# ------------------------------------------------------------------------------------------


@click.command("prepare", context_settings={"show_default": True})
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Window file to write (.npz).")
@click.option("--layout", type=click.Choice(["auto", "table", "hapt", "capture24", "steps"]), default="auto",
              help="auto: a folder of P*.csv with timestamp/annotation columns is step-count data (OxWalk), other "
                   "P*.csv.gz Capture-24, a parquet with user/acc_x columns HAPT, else a table.")
@click.option("--window-sec", type=click.Choice(["5", "10", "30"]), default="10", help="Window length (s): harnet5/10/30.")
@click.option("--step-sec", type=click.FloatRange(min=0, min_open=True), default=None, help="Start a window every STEP s (default: the window length).")
@click.option("--min-agreement", type=click.FloatRange(min=0, max=1, min_open=True), default=0.9, help="Keep a window when its majority label covers this share of its samples.")
@click.option("--lowpass-hz", type=click.FloatRange(min=0, min_open=True), default=None, help="Low-pass filter before resampling (Hz; default none).")
@click.option("--max-gap", type=click.FloatRange(min=0, min_open=True), default=1.0, help="Samples further apart than this (s) are a gap: windows across it are dropped.")
@click.option("--label-col", default="label", help="table: label column.")
@click.option("--pid-col", default="participant", help="table: participant column ('' when the file is one participant).")
@click.option("--recording-col", default=None, help="table: recording/session column, if a participant has several.")
@click.option("--time-col", default=None, help="table, steps: time column (datetimes, or numbers in --time-unit; default 'time', steps: 'timestamp'); table: '' to use --sample-rate.")
@click.option("--time-unit", type=click.Choice(["s", "ms", "us", "ns"]), default="s", help="table: unit of a numeric time column.")
@click.option("--sample-rate", type=click.FloatRange(min=0, min_open=True), default=None, help="table without a time column: samples per second.")
@click.option("--xyz-cols", default="x,y,z", help="table: the three acceleration columns.")
@click.option("--units", type=click.Choice(["g", "mg", "m/s2"]), default="g", help="table: acceleration units.")
@click.option("--dictionary", type=click.Path(exists=True, dir_okay=False), default=None, help="capture24: annotation-label-dictionary.csv.")
@click.option("--label-column", default="label:Walmsley2020", help="capture24: the dictionary's label column.")
@click.option("--steps-col", default="annotation", help="steps: the column marking each annotated step (1 on its sample).")
@click.option("--steptol", type=click.IntRange(min=1), default=4, help="steps: a 10-s window with at least this many steps is walking.")
def prepare(input_path, out, layout, window_sec, step_sec, min_agreement, lowpass_hz, max_gap, label_col, pid_col,
            recording_col, time_col, time_unit, sample_rate, xyz_cols, units, dictionary, label_column, steps_col,
            steptol) -> None:
    """Turn labelled raw recordings into a window file for `harnet train` / `harnet evaluate`.

    The output .npz holds X (N, 3, T) float32 in g at 30 Hz, y (labels as strings), pid,
    recording, time (window starts) and meta (JSON: geometry, preprocessing, dropped windows).
    Recordings are resampled by their timestamps; a window takes its majority label and is
    dropped when a sample is missing, when it is mostly unlabelled, or when the majority is
    below --min-agreement. Step-count data (--layout steps: per-participant tables marking each
    step) gives 10-s windows labelled walking when they hold at least --steptol steps, for
    training a walking detector (docs/models.md).
    """
    from harnet.train import datasets as D
    from harnet.train import prepare as P

    opts = P.WindowOptions(window_sec=int(window_sec), step_sec=step_sec, min_agreement=min_agreement,
                           lowpass_hz=lowpass_hz, max_gap_s=max_gap)
    p = Path(input_path)
    if layout == "auto":
        from harnet.errors import InputError

        try:
            layout = D.detect_layout(p)
        except InputError as e:
            raise click.UsageError(str(e)) from None
    if layout == "capture24":
        if not dictionary:
            raise click.UsageError("the Capture-24 layout needs --dictionary annotation-label-dictionary.csv")
        ws = D.prepare_capture24(p, dictionary, label_column, opts, progress=lambda n: click.echo(f"reading {n}", err=True))
    elif layout == "hapt":
        ws = D.prepare_hapt(p, opts)
    elif layout == "steps":
        from harnet.train.steps_data import prepare_steps

        ws = prepare_steps(p, opts, steptol=steptol, steps_col=steps_col, time_col=time_col or "timestamp",
                           xyz_cols=_xyz(xyz_cols), time_unit=time_unit, units=units,
                           progress=lambda n: click.echo(f"reading {n}", err=True))
    else:
        cols = _xyz(xyz_cols)
        time_col = "time" if time_col is None else time_col
        if not time_col and not sample_rate:
            raise click.UsageError("without --time-col, give --sample-rate")
        ws = D.prepare_table(p, opts, label_col=label_col, pid_col=pid_col or None, time_col=time_col or None,
                             xyz_cols=cols, recording_col=recording_col, sample_rate=sample_rate,
                             time_unit=time_unit, units=units)
    ws.save(out)
    c = ws.meta["counts"]
    click.echo(
        f"{out}: {len(ws)} windows from {ws.meta['participants']} participants; dropped "
        f"{c['incomplete']} incomplete, {c['unlabelled']} unlabelled, {c['mixed']} mixed of {c['candidates']}"
    )
    for lab in ws.labels:
        click.echo(f"  {lab}: {int((ws.y == lab).sum())}")


@click.command("train", context_settings={"show_default": True})
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--from", "init", default="harnet10", help="Start from: a registry backbone (harnet5/10/30), a model directory, hf://org/repo, or 'none' (from scratch).")
@click.option("--freeze", is_flag=True, help="Train only the head (the backbone stays as it is).")
@_train_options
@click.option("--peak-distance", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Walking detectors (step-count data): least time between two steps, s (default 0.4).")
@click.option("--peak-prominence", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Walking detectors: least prominence of a step's peak, g (default 0.2).")
@click.option("--step-lowpass", type=click.FloatRange(min=0, max=15, min_open=True, max_open=True), default=None,
              help="Walking detectors: low-pass of the step signal, Hz (default 5).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def train(data, out, init, freeze, progress, peak_distance, peak_prominence, step_lowpass, **kw) -> None:
    """Fine-tune a harnet network on a window file and write a model directory.

    The result loads with harnet.load(OUT), runs with `harnet predict --model OUT` and
    publishes with `harnet push OUT --repo org/name`. Validation participants (--val-frac) are
    held out for early stopping and the HMM, which is fitted on their predictions only. A window
    file of step-count data gives a walking detector for `harnet predict --steps-model OUT`
    (labels not-walking/walking, the step counter's parameters in config.json "steps").
    """
    from harnet.train.finetune import train as run

    opts = _topts(init, freeze, kw, _progress_default(progress))
    given = {"peak_distance_s": peak_distance, "peak_prominence_g": peak_prominence, "lowpass_hz": step_lowpass}
    res = run(data, out, opts, step_params={k: v for k, v in given.items() if v is not None} or None)
    last = res.history[res.best_epoch - 1]
    click.echo(
        f"{out}: {res.model.config.arch}, {len(res.labels)} classes, best epoch {res.best_epoch}/{len(res.history)} "
        f"(val loss {last['val_loss']:.4f}, val acc {last['val_acc']:.3f}), {res.seconds:.0f} s"
        + (", hmm.json written" if res.hmm is not None else "")
        + _steps_note(Path(out))
    )


def _steps_note(model_dir: Path) -> str:
    """``", walking detector: ..."`` when the model directory carries a step counter."""
    import json

    steps = json.loads((model_dir / "config.json").read_text()).get("steps")
    if not steps:
        return ""
    return (f", walking detector (steptol {steps['steptol']}, peaks {steps['peak_distance_s']:g} s apart, "
            f"prominence {steps['peak_prominence_g']:g} g, low-pass {steps['lowpass_hz']:g} Hz)")


@click.command("evaluate", context_settings={"show_default": True})
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for results.json, results.md, confusion.png, predictions.csv.")
@click.option("--settings", default="rf,scratch,finetune", help="Comma-separated: rf, scratch, frozen, finetune.")
@click.option("--cv", type=click.IntRange(min=2), default=5, help="Participant-grouped folds.")
@click.option("--loso", is_flag=True, help="Leave one participant out instead of --cv folds.")
@click.option("--from", "backbone", default="harnet10", help="Backbone for frozen/finetune: registry name, model directory or hf://org/repo.")
@click.option("--rf-trees", type=click.IntRange(min=1), default=200, help="Trees in the random forest.")
@_train_options
@click.option("--force", is_flag=True, help="Recompute settings whose cached results in OUT/settings/ match.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a terminal).")
def evaluate(data, out, settings, cv, loso, backbone, rf_trees, force, progress, **kw) -> None:
    """Subject-wise cross-validation of rf / scratch / frozen / finetune, with and without the HMM.

    Reports per-participant macro F1, Cohen's kappa and balanced accuracy (mean ± SD over test
    participants) and pooled confusion matrices. Settings already computed with the same data,
    folds and options are reused from OUT/settings/, so a setting can be added later.
    """
    from harnet.train.evaluate import EvalOptions, evaluate as run

    names = tuple(s.strip() for s in settings.split(",") if s.strip())
    try:
        opts = EvalOptions(settings=names, cv=cv, loso=loso, backbone=backbone, seed=kw["seed"],
                           train=_topts("none", False, kw, _progress_default(progress)), rf_trees=rf_trees,
                           force=force)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--settings") from None
    run(data, out, opts, echo=lambda s: click.echo(s, err=True))
    click.echo(Path(out, "results.md").read_text())


@click.command("push", context_settings={"show_default": True})
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", required=True, help="Hugging Face repo id, org/name (created if missing).")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--revision", default=None, help="Branch to push to.")
@click.option("--message", default=None, help="Commit message.")
@click.option("--license", "license_", default="other", help="Licence identifier for the model card metadata.")
@click.option("--token", default=None, envvar="HF_TOKEN", help="Hugging Face token (default: $HF_TOKEN or the login).")
@click.option("--endpoint", default=None, envvar="HF_ENDPOINT", help="Hub endpoint (default: huggingface.co).")
def push(model_dir, repo, private, revision, message, license_, token, endpoint) -> None:
    """Publish a model directory to a Hugging Face model repo, with a generated model card.

    Afterwards anyone can use it as harnet.load("hf://ORG/NAME") or
    `harnet predict FILE --model hf://ORG/NAME`.
    """
    from harnet.train.publish import push as run

    info = run(model_dir, repo, token=token, private=private, revision=revision, commit_message=message,
               license=license_, endpoint=endpoint)
    url = getattr(info, "commit_url", None) or getattr(info, "repo_url", None) or repo
    click.echo(f"pushed {model_dir} to {repo}: {url}")
