"""`harnet convert`: a published checkpoint or bundle -> a harnet model directory."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("convert")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model directory to write (config.json, model.safetensors, hmm.json).")
@click.option("--name", "name", default=None, metavar="REGISTRY_NAME",
              help="Registry name of the published file (see `harnet models`): checks its checksum "
                   "and names its classes.")
@click.option("--force", is_flag=True, help="Overwrite an existing, non-empty --out directory.")
def convert(source: Path, out: Path, name: str | None, force: bool) -> None:
    """Convert a published weights file into a harnet model directory, without running its code.

    SOURCE is an ssl-wearables checkpoint (.mdl: a backbone, head untrained) or a classifier
    bundle of the asleep, actinet or stepcount tools (.joblib.lzma). Bundles are pickles: harnet
    reads them with an allow-listed reader and refuses anything else, so no code in the file runs.
    The weights keep their own licence (printed on each run), not harnet's.
    """
    from harnet.convert import convert as _convert

    entry = None
    if name is not None:
        from harnet import registry

        entry = registry.get(name)
    model_dir = _convert(source, out, entry=entry, overwrite=force)
    cfg = json.loads((model_dir / "config.json").read_text())
    prov = cfg.get("provenance", {})
    licence_url = f" ({entry.licence_url})" if entry is not None and getattr(entry, "licence_url", "") else ""
    click.echo(
        f"harnet: the weights in {source.name} come under the {prov.get('licence')}{licence_url}; "
        "by using them you accept its terms.",
        err=True,
    )
    conv = cfg.get("conversion", {})
    what = f"{cfg['kind']} {cfg['arch']} ({cfg['window_sec']} s windows)"
    if cfg.get("labels"):
        what += f", labels: {', '.join(cfg['labels'])}"
    if (model_dir / "hmm.json").is_file():
        what += ", with HMM"
    if steps := cfg.get("steps"):
        what += (f", step counter: steptol {steps['steptol']}, low-pass {steps['lowpass_hz']:g} Hz, "
                 f"peaks {steps['peak_distance_s']:g} s apart, prominence {steps['peak_prominence_g']:g} g")
    click.echo(f"{model_dir}: {what}; loaded {conv.get('tensors_loaded')} tensors, "
               f"{conv.get('elements_loaded'):,} elements; source sha256 {prov.get('sha256')}")
