"""Golden outputs: `harnet predict` gives byte-identical files to the stored digests.

The goldens and how to regenerate them: tests/golden/make_golden.py (its docstring). A case whose
input is absent here (the real device files of ../shared/data) is skipped; so is everything on a
machine whose float arithmetic differs from the one the goldens were made on (the stored numerics
fingerprint), since probabilities then differ in their last bits.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("make_golden", HERE / "golden" / "make_golden.py")
G = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(G)
STORED = json.loads(G.GOLDEN.read_text())

NAMES = list(G.WEEK_CASES) + [rel.replace("/", "__") for rel, _ in G.REAL]
EXTRA = {**G.WEEK_CASES, **{rel.replace("/", "__"): extra for rel, extra in G.REAL}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("golden")
    model = G.make_model(work)
    got = G.numerics_fingerprint(model)
    if got != STORED["fingerprint"]:
        pytest.skip(f"this machine's float arithmetic differs from the one the goldens were made on (numerics "
                    f"fingerprint {got[:12]}, stored {STORED['fingerprint'][:12]}); regenerate them here with "
                    "tests/golden/make_golden.py to compare")
    return work, model, G.make_week(work / "week.cwa")


def test_every_case_is_stored():
    assert sorted(NAMES) == sorted(STORED["cases"])


@pytest.mark.parametrize("name", NAMES)
def test_golden(name, setup, request):
    work, model, week = setup
    if name in G.WEEK_CASES:
        path = week
    else:
        request.applymarker(pytest.mark.shared_data)
        path = G.DEVICES / name.replace("__", "/")
        if not path.exists():
            pytest.skip(f"{path} not present (only in the project's own checkout)")
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    rec = G.run_case(name, path, EXTRA[name], model, runs)
    want = STORED["cases"][name]
    if "_daily" in rec:  # readable first: a failure shows which numbers moved
        assert rec["_daily"] == (G.CASES_DIR / name / "summary.csv").read_text()
        assert rec["_info"] == (G.CASES_DIR / name / "info.json").read_text()
    assert {k: v for k, v in rec.items() if not k.startswith("_")} == want
