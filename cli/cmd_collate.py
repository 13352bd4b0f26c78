"""`harnet collate`: one cohort table from the per-recording outputs of a batch."""

from __future__ import annotations

import click


@click.command("collate", context_settings={"show_default": True})
@click.argument("outdir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Participant-day table: .parquet, .csv or .csv.gz. The participant table goes beside it "
              "as <name>-participants.<ext>.")
@click.option("--participants-out", type=click.Path(dir_okay=False), default=None,
              help="Participant table path instead of the default beside --out.")
@click.option("--allow-mixed-models", is_flag=True, help="Collate recordings made with different weights (same labels).")
@click.option("--tables", "tables", is_flag=True,
              help="Also stack every recording's minute, hour, sleep and bouts tables into <name>-minutes.parquet, "
              "<name>-hours.parquet, <name>-sleep.csv and <name>-bouts.csv beside --out.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def collate(outdir: str, out: str, participants_out: str | None, allow_mixed_models: bool, tables: bool, quiet: bool) -> None:
    """Collate the outputs of `harnet predict ... --outdir OUTDIR` into cohort tables.

    Writes one row per participant-day (Participant, File, then the daily summary columns) and
    one row per participant (recording summary, reader and calibration QC, wear flags such as
    GoodWear and Covers24hOK, the study measures of docs/outputs.md; inputs listed in
    OUTDIR/failures.csv appear with Status=failed). --tables stacks the per-recording tables too.
    """
    from harnet.collate import collate as _collate
    from harnet.collate import write_cohort

    cohort = _collate(outdir, allow_mixed_models=allow_mixed_models)
    paths = write_cohort(cohort, out, participants_out)
    if tables:
        from harnet.cohort_tables import stack_tables

        paths.update(stack_tables(outdir, out))
    if not quiet:
        n_ok = int((cohort.participants["Status"] == "ok").sum())
        click.echo(
            f"harnet: {n_ok} participant(s), {len(cohort.days)} day(s), {len(cohort.participants) - n_ok} failed input(s)",
            err=True,
        )
        for k, p in paths.items():
            click.echo(f"  {k:<12} {p}", err=True)
