"""The registry of published weights: a schema test over every entry, manifest and cards in step."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harnet import registry
from harnet.errors import ModelError
from harnet.model import HarnetConfig
from harnet.registry import BACKBONES, CHECKSUM_HEX_LEN, DEFAULT_CLASSIFIER, WeightsEntry

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
NAMES = registry.names()


def _manifest_rows() -> dict[str, str]:
    """name -> table row, from weights/manifest.md."""
    rows = {}
    for line in (WEIGHTS / "manifest.md").read_text().splitlines():
        m = re.match(r"^\| `([^`]+)`", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_registry_has_the_published_models():
    assert set(NAMES) == {
        "harnet5", "harnet10", "harnet30", "harnet30-c24-walmsley",
        "actinet-c24-rw-20260128", "actinet-c24-mw-20260128", "stepcount-walk-20230208",
    }
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("name", NAMES)
def test_entry_schema(name):
    e = registry.get(name)
    assert isinstance(e, WeightsEntry) and e.name == name
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if f.name not in ("labels", "size", "sdists"):  # sdists: only where a package index carries the file
            assert v not in ("", (), None), f"{name}.{f.name} is empty"
        if isinstance(v, str):
            assert v == v.strip() and "\n" not in v, f"{name}.{f.name} must be one trimmed line"
    assert e.kind in ("backbone", "classifier")
    assert e.format in registry.FORMATS
    # checksum: hex of the right length for its algorithm
    assert re.fullmatch(f"[0-9a-f]{{{CHECKSUM_HEX_LEN[e.checksum_algo]}}}", e.checksum)
    assert e.size is None or (isinstance(e.size, int) and e.size > 1_000_000)
    # architecture and window agree with the network definition
    n_cls = len(e.labels) or 2
    cfg = HarnetConfig(arch=e.arch, window_sec=e.window_sec, num_classes=n_cls, labels=e.labels)
    assert cfg.input_length == e.window_sec * 30
    assert HarnetConfig.for_arch(e.arch).window_sec == e.window_sec
    if e.kind == "backbone":
        assert e.labels == () and e.name == e.arch and e.format == "ssl-mdl"
        assert e.checksum_algo == "gitsha1"
    else:
        assert len(e.labels) >= 2 and len(set(e.labels)) == len(e.labels)
        assert all(lab and lab == lab.strip() for lab in e.labels)
        assert e.format != "ssl-mdl"
    # licence: the weights' own, stated in full
    assert "Oxford Academic Use" in e.licence and "non-commercial" in e.licence
    assert e.licence_url.startswith("https://")
    # downloads: https only, distinct, and the preferred one pinned to a commit, release or dated file
    assert e.urls and len(set(e.urls)) == len(e.urls)
    assert all(u.startswith("https://") for u in e.urls)
    first = e.urls[0]
    pinned = (
        re.search(r"/[0-9a-f]{40}/", first)
        or re.search(r"/releases/download/\d+\.\d+\.\d+/", first)
        or re.search(r"20\d{6}", first)
    )
    assert pinned, f"{name}: {first} is not pinned to a commit, release or dated file"
    assert "/" not in e.filename and not e.filename.startswith(".")
    assert e.description.endswith(".") and len(e.description) <= 120
    assert "doi:" in e.citation
    json.dumps(e.to_dict())  # plain data


def test_backbones_are_ssl_wearables_at_the_pinned_commit():
    commit = "150550ea5d41800229c95e36f88f5bf0d2e7cf04"
    expected = {
        "harnet5": ("mtl_5_best.mdl", "2dd83bd98aefa944bfda7231e239bcbeec0a924c"),
        "harnet10": ("mtl_best.mdl", "252acc5eb036bcf8d37d915ce0377ab2dd5f9104"),
        "harnet30": ("mtl_30_best.mdl", "3d660c7fb4961669fb9a8655277a12674ca77864"),
    }
    assert BACKBONES == ("harnet5", "harnet10", "harnet30")
    assert [e.name for e in registry.list_models("backbone")] == list(BACKBONES)
    for name, (file, sha) in expected.items():
        e = registry.get(name)
        assert e.urls[0] == f"https://github.com/OxWearables/ssl-wearables/raw/{commit}/model_check_point/{file}"
        assert e.checksum == sha and commit in e.source_info
    h10 = registry.get("harnet10")
    assert h10.urls[1] == "https://wearables-files.ndph.ox.ac.uk/files/ssl/mtl_best.mdl"
    assert h10.size == 42_014_098


def test_classifiers_match_the_published_bundles():
    e = registry.get(DEFAULT_CLASSIFIER)
    assert e.kind == "classifier" and e.window_sec == 30 and e.arch == "harnet30"
    assert e.is_default and sum(x.is_default for x in registry.list_models()) == 1
    assert e.labels == ("light", "moderate-vigorous", "sedentary", "sleep")
    assert e.checksum_algo == "sha256" and e.size == 40_918_798
    assert e.checksum == "de0341fa1d16d0a8b94a098f63c28da68158c783977340784accc69d01489c10"
    assert e.urls[0].endswith("/asleep/releases/download/0.4.12/ssl.joblib.lzma")
    rw, mw = registry.get("actinet-c24-rw-20260128"), registry.get("actinet-c24-mw-20260128")
    assert rw.labels == e.labels and rw.checksum == "a829041ba84b18084b4b2897fb1b36a6"
    assert mw.labels == ("bicycling", "mixed", "sit-stand", "sleep", "vehicle", "walking")
    assert mw.checksum == "59a9492b50ee922c7a31f88888c5f14b"
    assert rw.format == mw.format == "actinet-bundle"
    sc = registry.get("stepcount-walk-20230208")
    assert (sc.arch, sc.window_sec, sc.labels) == ("harnet10", 10, ("not-walking", "walking"))
    assert sc.checksum == "eea6179f079b554d5e2c8c98ccea8423" and sc.format == "stepcount-bundle"
    assert [x.name for x in registry.list_models("classifier")] == [n for n in NAMES if n not in BACKBONES]


@pytest.mark.parametrize("name", NAMES)
def test_manifest_and_card(name):
    e = registry.get(name)
    row = _manifest_rows().get(name)
    assert row is not None, f"{name} is missing from weights/manifest.md"
    assert f"{e.checksum_algo} `{e.checksum}`" in row
    assert e.arch in row and f"{e.window_sec} s" in row
    card = WEIGHTS / "cards" / f"{name}.md"
    assert card.is_file(), f"weights/cards/{name}.md is missing"
    text = card.read_text()
    assert text.startswith(f"# {name}\n")
    assert e.checksum in text and e.urls[0] in text and "Oxford Academic Use" in text
    for label in e.labels:
        assert label in text
    for doi in re.findall(r"doi:([^;\s]+)", e.citation):
        assert doi in text


def test_manifest_lists_nothing_else():
    assert set(_manifest_rows()) == set(NAMES)
    cards = {p.stem for p in (WEIGHTS / "cards").glob("*.md")}
    assert cards == set(NAMES)


def test_get_unknown_name_lists_known_names():
    with pytest.raises(ModelError) as ei:
        registry.get("harnet11")
    msg = str(ei.value)
    assert "harnet11" in msg and all(n in msg for n in NAMES) and "harnet models" in msg
    with pytest.raises(ModelError):
        registry.list_models("head")


def test_entries_are_frozen_and_validated():
    e = registry.get("harnet10")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.checksum = "0" * 40  # type: ignore[misc]
    with pytest.raises(ModelError, match="40 hex"):
        dataclasses.replace(e, checksum="abc")
    with pytest.raises(ModelError, match="checksum_algo"):
        dataclasses.replace(e, checksum_algo="crc32")
    with pytest.raises(ModelError, match="kind"):
        dataclasses.replace(e, kind="head")
    with pytest.raises(ModelError, match="plain file name"):
        dataclasses.replace(e, filename="../evil.mdl")
    with pytest.raises(ModelError, match="no URL"):
        dataclasses.replace(e, urls=())
    assert dataclasses.replace(e, checksum=e.checksum.upper()).checksum == e.checksum


def test_registry_and_hub_import_cheaply():
    code = (
        "import sys, harnet, harnet.registry, harnet.hub; "
        "print(sorted(m for m in ('torch', 'huggingface_hub', 'click', 'onnxruntime', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert harnet_list_models_is_registry()


def harnet_list_models_is_registry() -> bool:
    import harnet

    return harnet.list_models() == registry.list_models()


def test_cli_models_table(capsys):
    from harnet_cli.main import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["name", "kind", "arch", "window", "labels", "licence"]
    for name in NAMES:
        assert any(line.split()[0] == name for line in lines[1:]), name
    default = [line for line in lines if line.startswith(DEFAULT_CLASSIFIER)]
    assert len(default) == 1 and default[0].split()[1] == "*"
    assert "light, moderate-vigorous, sedentary, sleep" in default[0]
    assert main(["models", "--kind", "backbone"]) == 0
    out = capsys.readouterr().out
    assert "harnet10" in out and DEFAULT_CLASSIFIER not in out


def test_cli_download_unknown_name_is_one_line_exit_1(capsys):
    from harnet_cli.main import main

    assert main(["download", "harnet10", "no-such-model"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no-such-model" in err and "harnet10" in err
    assert main(["download", "hf://not-a-spec"]) == 1
    assert "hf://org/repo" in capsys.readouterr().err
