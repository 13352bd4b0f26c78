"""`harnet export`: a model -> ONNX (fp32, and optionally a checked int8 graph)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("export")
@click.argument("model")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The .onnx file to write (default: model.onnx inside the model directory).")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True, help="ONNX opset.")
@click.option("--algorithm", type=click.Choice(["direct", "winograd"]), default="direct", show_default=True,
              help="Convolutions: direct (the reference graph) or Winograd F(4,5) (fp32, fewer multiplications, "
                   "the fastest on CPU; default file name model.winograd.onnx).")
@click.option("--int8", "int8", is_flag=True,
              help="Also write model.int8.onnx (static int8), kept only if it agrees with fp32 on real "
                   "recordings (>= 99.5 % of window labels, class totals within 1 %).")
@click.option("--calibrate", "calibrate", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Device file whose windows calibrate int8 (repeat the option for several files).")
@click.option("--validate", "validate", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Held-out device file on which int8 is checked against fp32 (repeatable; default: the "
                   "calibration files).")
@click.option("--calibrate-method", type=click.Choice(["minmax", "percentile", "entropy"]), default="minmax",
              show_default=True, help="How int8 activation ranges are set.")
def export(model: str, onnx_path: Path | None, opset: int, algorithm: str, int8: bool, calibrate: tuple[Path, ...],
           validate: tuple[Path, ...], calibrate_method: str) -> None:
    """Export MODEL to ONNX for fast CPU inference (`harnet predict --backend onnx`).

    MODEL is a registry name (see `harnet models`), a model directory or hf://org/repo. The graph
    has input `x` (batch, 3, T) float32 in g at 30 Hz and output `logits` (batch, classes), a
    dynamic batch axis and opset 17 or newer; it is checked with onnx.checker and compared with
    the PyTorch network (max logit difference <= 1e-4). The model's config (labels, window,
    sample rate, preprocessing, provenance) is embedded as metadata.
    """
    from harnet.errors import HarnetError
    from harnet.onnx.export import export_onnx, read_metadata
    from harnet.predictor import export_int8_from_files

    if int8 and not calibrate:
        raise click.UsageError("--int8 needs at least one --calibrate device file (real recordings)")
    if (calibrate or validate) and not int8:
        raise click.UsageError("--calibrate and --validate go with --int8")
    if int8 and algorithm != "direct":
        raise click.UsageError("--int8 quantises the direct graph; leave --algorithm at direct")
    out = export_onnx(model, onnx_path, opset=opset, algorithm=algorithm)
    meta = read_metadata(out)
    check = json.loads(meta["_onnx_metadata"].get("harnet_check", "{}"))
    diffs = ", ".join(f"{k.replace('max_abs_logit_diff_vs_', 'vs ')} {v:.1e}" for k, v in check.items() if k.startswith("max_abs"))
    click.echo(f"{out}: {meta['arch']} ({algorithm} convolutions), {meta['window_sec']} s windows, labels: "
               f"{', '.join(meta.get('labels', []))}" + (f"; max logit difference {diffs}" if diffs else ""))
    if int8:
        try:
            rep = export_int8_from_files(model, list(calibrate), validate=list(validate) or None, fp32_path=out,
                              calibrate_method=calibrate_method)
        except HarnetError as e:
            raise HarnetError(f"{e} (the fp32 export {out} was written)") from None
        click.echo(
            f"int8: labels agree with fp32 on {rep['label_agreement']:.2%} of {int(rep['windows'])} windows "
            f"({rep['validated_on']}), class totals within {rep['totals_rel_diff']:.2%}; written beside {out}"
        )
