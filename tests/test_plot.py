"""The day plot: one row per local day, class colours where the classes are, headless, atomic."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harnet.errors import InputError
from harnet.plot import DPI, NONWEAR_COLOUR, ROW_HEIGHT_IN, _draw_days, figure_height_in, label_colours, plot_days

LABELS = ["sleep", "sedentary", "light", "moderate-vigorous"]


def table(start: str, end: str, window_sec: int = 30, tz: str | None = None) -> pd.DataFrame:
    """00-07 sleep, 07-09 light, 09-24 sedentary; non-wear 13-15 every day; 20-21 no data."""
    t = pd.date_range(pd.Timestamp(start, tz=tz), pd.Timestamp(end, tz=tz), freq=f"{window_sec}s", inclusive="left")
    wall = t.tz_localize(None) if tz else t
    h = (wall.hour + wall.minute / 60).to_numpy()
    lab = np.where(h < 7, "sleep", np.where(h < 9, "light", "sedentary")).astype(object)
    nonwear = (h >= 13) & (h < 15)
    gap = (h >= 20) & (h < 21)
    wear = ~nonwear & ~gap
    lab[~wear] = None
    acc = np.where(wear, np.where(lab == "light", 60.0, 10.0), np.nan)
    return pd.DataFrame({"time": t, "acc": acc, "wear": wear, "nonwear": nonwear, "label": pd.Categorical(lab, categories=LABELS)})


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_one_row_per_day_and_png_geometry(tmp_path):
    import matplotlib

    rc_before = dict(matplotlib.rcParams)
    p3 = plot_days(table("2024-03-04 12:00", "2024-03-06 12:00"), LABELS, tmp_path / "three.png", title="P01")
    p1 = plot_days(table("2024-03-04 00:00", "2024-03-04 18:00"), LABELS, tmp_path / "one.png")
    assert dict(matplotlib.rcParams) == rc_before
    w3, h3 = png_size(p3)
    w1, h1 = png_size(p1)
    assert w3 == w1 == 1100
    assert h3 == round(figure_height_in(3) * DPI)
    assert h3 - h1 == round(2 * ROW_HEIGHT_IN * DPI)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["one.png", "three.png"]  # no temp files left


def test_bands_are_where_the_classes_are(tmp_path):
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    df = table("2024-03-04 12:00", "2024-03-06 12:00")
    fig = _draw_days(df, LABELS, title=None, window_sec=30)
    assert len(fig.axes) == 3
    out = plot_days(df, LABELS, tmp_path / "p.png", window_sec=30)
    img = imread(out)[:, :, :3]
    H, W = img.shape[:2]
    colours = label_colours(LABELS)

    def pixel(day: int, hour: float) -> np.ndarray:
        pos = fig.axes[day].get_position()
        x = (pos.x0 + hour / 24 * pos.width) * W
        y = (1 - (pos.y0 + 0.8 * pos.height)) * H  # high in the row, above the ENMO line
        return img[int(y), int(x)]

    def is_colour(px, c) -> bool:
        return bool(np.allclose(px, to_rgb(c), atol=0.02))

    assert is_colour(pixel(1, 3.5), colours["sleep"])  # Tuesday night
    assert is_colour(pixel(2, 8.0), colours["light"])  # Wednesday morning
    assert is_colour(pixel(0, 16.0), colours["sedentary"])  # Monday afternoon
    assert is_colour(pixel(1, 14.0), NONWEAR_COLOUR)  # non-wear
    assert is_colour(pixel(1, 20.5), "white")  # no data
    assert is_colour(pixel(0, 6.0), "white")  # before the recording


def test_dst_day_rows(tmp_path):
    df = table("2024-10-26 08:00", "2024-10-28 10:00", 60, tz="Europe/London")
    fig = _draw_days(df, LABELS, title=None, window_sec=None)  # window length inferred
    assert len(fig.axes) == 3
    assert fig.axes[0].get_xlim() == (0.0, 25.0)  # the 25-h Sunday sets the width
    assert plot_days(df, LABELS, tmp_path / "dst.svg").read_text().lstrip().startswith("<?xml")


def test_colours():
    c = label_colours(["Sleep", "sedentary", "LIGHT", "moderate_vigorous", "walking", "cycling"])
    assert c["Sleep"] == "#3b4cc0" and c["moderate_vigorous"] == "#d7301f"
    assert len(set(c.values())) == 6 and NONWEAR_COLOUR not in c.values()


def test_bad_suffix_writes_nothing(tmp_path):
    with pytest.raises(InputError, match=r"\.xyz"):
        plot_days(table("2024-03-04", "2024-03-04 06:00"), LABELS, tmp_path / "p.xyz")
    assert list(tmp_path.iterdir()) == []


def test_imports_stay_light():
    code = (
        "import sys, harnet.measures.activity, harnet.plot\n"
        "bad = [m for m in ('matplotlib', 'torch', 'onnxruntime', 'click') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
