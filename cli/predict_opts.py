"""`harnet predict` options spelled as actinet spells them, and the table-layout options.

One decorator adds them; :func:`apply` folds their values into harnet's own options, so each
setting has one meaning whichever spelling is used (README: "For actinet users").
"""

from __future__ import annotations

import re
from typing import Any, Callable

import click

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)\s*$", re.I)
_UNITS = {"d": 24.0, "day": 24.0, "days": 24.0, "h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0,
          "min": 1 / 60, "mins": 1 / 60, "minute": 1 / 60, "minutes": 1 / 60, "t": 1 / 60, "m": 1 / 60,
          "s": 1 / 3600, "sec": 1 / 3600, "second": 1 / 3600, "seconds": 1 / 3600}


def duration_hours(value: str) -> float:
    """'12H', '720min', '0.5D', '90m' -> hours (pandas' Timedelta units, case-insensitive)."""
    m = _DURATION.match(value or "")
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a duration; give a number and a unit, e.g. 12H, 720min or 0.5D")
    return float(m.group(1)) * _UNITS[unit]


def _wear(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        hours = duration_hours(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if hours > 25:
        raise click.BadParameter(f"{value!r} is {hours:g} hours; a day has at most 25 (on a DST change)")
    return hours


def _delimiter(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    value = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " "}.get(value.lower(), value)
    if len(value) != 1:
        raise click.BadParameter(f"{value!r}: give one character, e.g. ';' or 'tab'")
    return value


OPTIONS = [
    click.option("--exclude-first-last", type=click.Choice(["first", "last", "both"]), default=None,
                 help="actinet's spelling: leave the first, last or both calendar days (local time) of the recording "
                      "out of the summaries (= --exclude-first-day / --exclude-last-day)."),
    click.option("--exclude-wear-below", callback=_wear, default=None, metavar="DURATION",
                 help="actinet's spelling: days with less wear than this (12H, 720min, 0.5D) are invalid: kept in the "
                      "daily table with DayValid 0 and left out of the recording averages (= --min-wear-per-day HOURS)."),
    click.option("--calibration-stdtol-min", type=click.FloatRange(min=0), default=None, metavar="G",
                 help="Gravity calibration uses only still windows whose every axis SD is above this (g, as actinet/actipy; "
                      "e.g. 0.001 skips flat-lined stretches). Default: no lower bound."),
    click.option("--force-download", is_flag=True,
                 help="Download the registry model's weights again even when a verified copy is cached "
                      "(the cache is replaced only by a verified new copy)."),
    click.option("--csv-start-row", type=click.IntRange(min=1), default=1,
                 help="CSV: 1-based line the table starts on (its column names, if any); earlier lines are skipped (as actinet)."),
    click.option("--csv-delimiter", callback=_delimiter, default=None,
                 help="CSV: field separator, one character or tab/semicolon/space (default ,)."),
    click.option("--steps", is_flag=True,
                 help="Also count steps (stepcount's method) with the registry's walking detector "
                      "stepcount-walk-20230208, on the same windows: per-10-s steps table, steps and walking "
                      "minutes in the minute/hour/daily tables, cadence, walking bouts."),
    click.option("--steps-model", default=None, metavar="NAME|DIR",
                 help="Count steps with this walking detector (registry name or model directory) instead; implies --steps."),
    click.option("--step-times", is_flag=True, help="With --steps: also write the time of every step (<stem>-steptimes.parquet)."),
]


def options(f: Callable) -> Callable:
    for opt in reversed(OPTIONS):
        f = opt(f)
    return f


def apply(kw: dict[str, Any], reader: dict[str, Any], popts: dict[str, Any], *, min_wear_given: bool = False) -> bool:
    """Pop this module's values from ``kw`` (the command's other keyword arguments), fold them
    into ``popts`` (PredictOptions fields) and ``reader`` (table options); returns --force-download.
    ``min_wear_given``: --min-wear-per-day was on the command line (not its default)."""
    efl = kw.pop("exclude_first_last")
    popts["exclude_first_day"] |= efl in ("first", "both")
    popts["exclude_last_day"] |= efl in ("last", "both")
    wear = kw.pop("exclude_wear_below")
    if wear is not None:
        if min_wear_given and popts["min_wear_per_day"] != wear:
            raise click.UsageError("--exclude-wear-below and --min-wear-per-day disagree; give one of them")
        popts["min_wear_per_day"] = wear
    start_row, delimiter = kw.pop("csv_start_row"), kw.pop("csv_delimiter")
    if start_row != 1:
        reader["start_row"] = start_row
    if delimiter is not None:
        reader["delimiter"] = delimiter
    popts["calibration_stdtol_min"] = kw.pop("calibration_stdtol_min")
    popts["steps"], popts["steps_model"], popts["step_times"] = kw.pop("steps"), kw.pop("steps_model"), kw.pop("step_times")
    if popts["step_times"] and not (popts["steps"] or popts["steps_model"]):
        raise click.UsageError("--step-times needs --steps (or --steps-model NAME|DIR)")
    return bool(kw.pop("force_download"))
