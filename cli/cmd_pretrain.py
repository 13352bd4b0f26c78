"""`harnet pretrain`: self-supervised pre-training of a harnet feature extractor."""

from __future__ import annotations

from pathlib import Path

import click


def _expand(paths: tuple[str, ...]) -> list[Path]:
    """Files as given; a folder gives the files under it that `harnet.io.read_device` reads."""
    from harnet.io import SUFFIXES

    files: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(SUFFIXES))
            if not found:
                raise click.UsageError(f"{p} holds no device files ({', '.join(SUFFIXES)})")
            files += found
        else:
            files.append(p)
    return files


def _lowpass(value: str) -> float | None:
    if value.lower() in ("none", "off", "0"):
        return None
    try:
        hz = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a frequency; give Hz or 'none'", param_hint="--lowpass-hz") from None
    if hz <= 0:
        raise click.BadParameter("give a positive frequency or 'none'", param_hint="--lowpass-hz")
    return hz


@click.command("pretrain", context_settings={"show_default": True})
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Backbone model directory to write.")
@click.option("--arch", type=click.Choice(["harnet5", "harnet10", "harnet30"]), default=None,
              help="Architecture (default harnet10, or that of --resume-from).")
@click.option("--resume-from", default=None,
              help="Start from this model directory, hf://org/repo or registry name (e.g. harnet10) instead of random weights.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Window store and checkpoint [default: OUT.pretrain-work beside --out].")
@click.option("--restart", is_flag=True, help="Ignore a checkpoint in the work dir and start afresh.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, help="Most epochs (one epoch visits every training recording once).")
@click.option("--patience", type=click.IntRange(min=1), default=5, help="Stop after this many epochs without a better held-out loss.")
@click.option("--subjects-per-batch", type=click.IntRange(min=1), default=4, help="Recordings per optimiser step.")
@click.option("--windows-per-subject", type=click.IntRange(min=1), default=32, help="Windows drawn from each recording per step (probability proportional to their standard deviation).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, help="Base learning rate (Adam, amsgrad).")
@click.option("--lr-scale/--no-lr-scale", default=True, help="Scale the learning rate by batch/512.")
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=5, help="Geometric warm-up from a tenth of the learning rate.")
@click.option("--val-frac", type=click.FloatRange(min=0, max=1, max_open=True), default=0.2, help="Share of recordings held out for early stopping.")
@click.option("--tasks", default="aot,permute,time_w", help="Pretext tasks: some of aot, permute, time_w.")
@click.option("--augment/--no-augment", default=True, help="Random axis order and 3-D rotation per subject batch.")
@click.option("--calibrate/--no-calibrate", default=True, help="Gravity calibration before windowing.")
@click.option("--nonwear/--no-nonwear", default=True, help="Drop windows in non-wear episodes.")
@click.option("--lowpass-hz", default="20", help="Low-pass filter before resampling (Hz, or 'none').")
@click.option("--seed", type=int, default=0, help="Seed of every random draw (same seed, same result).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default: torch's).")
@click.option("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, mps).")
@click.option("--skip-unreadable", is_flag=True, help="Skip input files that cannot be read (each is reported) instead of stopping.")
@click.option("--save-heads/--no-save-heads", default=True, help="Also write the pretext heads, so that pre-training can continue.")
@click.option("--checkpoint-minutes", type=click.FloatRange(min=0, min_open=True), default=5.0, help="Write a checkpoint at least this often.")
def pretrain(files, out, arch, resume_from, work_dir, restart, epochs, patience, subjects_per_batch,
             windows_per_subject, lr, lr_scale, warmup_epochs, val_frac, tasks, augment, calibrate, nonwear,
             lowpass_hz, seed, threads, device, skip_unreadable, save_heads, checkpoint_minutes) -> None:
    """Pre-train a feature extractor on unlabelled device FILES (or folders of them).

    The paper's multi-task self-supervision: arrow of time, segment permutation and time warp,
    each applied with probability 0.5, one binary head per task. Every file is read and windowed
    as `harnet predict` does (non-wear dropped) into a window store on disk, so the data may
    exceed memory; each file counts as one subject for the held-out split. Run the same command
    again to resume after an interruption. The output directory is a backbone for
    `harnet train --from OUT`, `harnet evaluate --from OUT` or `harnet.load(OUT)`.
    """
    from harnet.modeldir import read_config
    from harnet.train.ssl import PretrainConfig
    from harnet.train.ssl import pretrain as run

    if arch is None:
        arch = "harnet10"
        if resume_from is not None:
            from harnet.loading import resolve_model_dir

            arch = read_config(resolve_model_dir(resume_from))["arch"]
    cfg = PretrainConfig(
        arch=arch, tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()), subjects_per_batch=subjects_per_batch,
        windows_per_subject=windows_per_subject, lr=lr, lr_scale=lr_scale, warmup_epochs=warmup_epochs,
        max_epochs=epochs, patience=patience, val_fraction=val_frac, augment=augment, seed=seed,
        calibrate=calibrate, detect_nonwear=nonwear, lowpass_hz=_lowpass(lowpass_hz),
    )
    res = run(
        _expand(files), out, cfg, resume_from=resume_from, work_dir=work_dir, restart=restart,
        save_heads=save_heads, threads=threads, device=device, skip_unreadable=skip_unreadable,
        checkpoint_every_s=checkpoint_minutes * 60, progress=lambda s: click.echo(s, err=True),
    )
    acc = ", ".join(f"{t} {a:.3f}" for t, a in res.val_accuracy.items()) or "no held-out recordings"
    click.echo(
        f"{res.out_dir}: {res.n_windows} windows, {len(res.history)} epochs ({res.stopped}), "
        f"{res.seconds / 60:.1f} min; held-out pretext accuracy: {acc}"
    )
