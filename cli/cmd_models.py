"""`harnet models` and `harnet download`: list the published weights and pre-fill the cache."""

from __future__ import annotations

import click


@click.command("models")
@click.option("--kind", type=click.Choice(["backbone", "classifier"]), default=None, help="Only this kind.")
def models(kind: str | None) -> None:
    """List the published weights harnet can fetch (* marks the default classifier).

    All of them come under the Oxford Academic Use Licence (non-commercial research only);
    `harnet download NAME` fetches one, `harnet.load(NAME)` uses it.
    """
    from harnet.registry import list_models

    rows = [("name", "kind", "arch", "window", "labels", "licence")]
    for e in list_models(kind):
        rows.append(
            (
                e.name + (" *" if e.is_default else ""),
                e.kind,
                e.arch,
                f"{e.window_sec} s",
                ", ".join(e.labels) if e.labels else "-",
                e.licence,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    click.echo("* default activity classifier")
    click.echo("Sources, tried in order until one gives the pinned checksum:")
    for e in list_models(kind):
        click.echo(f"  {e.name} ({e.checksum_algo} {e.checksum})")
        for i, src in enumerate(e.sources, 1):
            click.echo(f"    {i}. {src}")


@click.command("download")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
def download(names: tuple[str, ...], progress: bool | None) -> None:
    """Fetch, convert and verify weights into the cache, for later offline use.

    NAME is a registry name (see `harnet models`) or hf://org/repo[@revision]. The cache is
    $HARNET_CACHE (registry weights) and $HF_HOME (Hugging Face repos); run this where the
    network is reachable, then share the cache (read-only is fine) with offline jobs. It holds
    the raw file, the converted model directory and the ONNX graph `--backend auto` uses on a
    CPU, each verified, so offline jobs write nothing into it.
    """
    from harnet import hub, registry
    from harnet.loading import licence_notice
    from harnet.offline import fill

    entries = {}
    for name in names:  # check every name before fetching anything
        if not name.startswith("hf://"):
            entries[name] = registry.get(name)
        else:
            hub.parse_hf_spec(name)
    for name in names:
        if name in entries:
            click.echo(licence_notice(entries[name]), err=True)
        for what, path in fill(name, progress=progress):
            click.echo(f"{name}: {what}: {path}")
