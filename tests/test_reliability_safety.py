"""Safety: no pickle is ever loaded outside the allow-listed converter.

The package source (harnet/, cli/, hubconf.py) is parsed (AST, so comments and strings do not
count and aliases are followed) for every way of running a pickle: ``pickle``/``_pickle``/
``dill``/``cloudpickle`` loads and unpicklers, ``joblib.load``, ``pandas.read_pickle``,
``numpy.load(..., allow_pickle=True)``, ``torch.load`` (and ``torch.hub.load_state_dict_from_url``)
without a literal ``weights_only=True``, ``shelve``, ``marshal`` and ``yaml.load`` without a safe
loader. Only harnet/convert/safepickle.py may use an unpickler (its own allow-listed one); ``torch.load``
needs ``weights_only=True`` everywhere, the converter included.

The other safety rules are tested where they live: a downloaded file is used only after its
checksum matches (tests/test_hub.py: corrupt download, corrupt cache, every load re-hashed);
cache writes are atomic and safe with two processes fetching one model
(tests/test_hub_concurrency.py); a model directory whose weights do not match config.json is
refused by every backend (tests/test_reliability_corpus.py, model-weights-checksum cases).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.joinpath("harnet").rglob("*.py"), *ROOT.joinpath("cli").rglob("*.py"), ROOT / "hubconf.py"])
ALLOWED_UNPICKLER = {"harnet/convert/safepickle.py"}

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle"}
ALWAYS_BAD = {
    "joblib.load", "pandas.read_pickle", "shelve.open", "shelve.DbfilenameShelf", "marshal.load", "marshal.loads",
    "numpy.lib.format.read_array",
}
NEEDS_WEIGHTS_ONLY = {"torch.load", "torch.hub.load_state_dict_from_url"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def findings(source: str, rel: str) -> list[str]:
    """Unsafe deserialisation in one file: 'line: what' strings."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {"np": "numpy", "pd": "pandas"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    out: list[str] = []
    unpickler_ok = rel in ALLOWED_UNPICKLER
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func, aliases)
            if name is None:
                continue
            mod = name.split(".")[0]
            last = name.rsplit(".", 1)[-1]
            if mod in PICKLE_MODULES and (last in ("load", "loads") or "Unpickler" in last):
                if not unpickler_ok:
                    out.append(f"{node.lineno}: {name}")
            elif name in ALWAYS_BAD:
                out.append(f"{node.lineno}: {name}")
            elif name in NEEDS_WEIGHTS_ONLY and not _is_true(_kw(node, "weights_only")):
                out.append(f"{node.lineno}: {name} without weights_only=True")
            elif name in ("numpy.load",) and _kw(node, "allow_pickle") is not None and not (
                isinstance(_kw(node, "allow_pickle"), ast.Constant) and _kw(node, "allow_pickle").value is False
            ):
                out.append(f"{node.lineno}: {name} with allow_pickle")
            elif name in ("yaml.load", "yaml.load_all") and "Safe" not in ast.unparse(_kw(node, "Loader") or ast.Constant(None)):
                out.append(f"{node.lineno}: {name} without a safe loader")
        elif isinstance(node, ast.ClassDef):
            for b in node.bases:
                name = _dotted(b, aliases) or ""
                if name.split(".")[0] in PICKLE_MODULES and "Unpickler" in name and not unpickler_ok:
                    out.append(f"{node.lineno}: class {node.name}({name})")
    return out


def test_no_pickle_is_loaded_outside_the_converter():
    assert len(SOURCES) > 20 and ROOT.joinpath("harnet/convert/safepickle.py") in SOURCES
    bad = {}
    for path in SOURCES:
        rel = path.relative_to(ROOT).as_posix()
        got = findings(path.read_text(encoding="utf-8"), rel)
        if got:
            bad[rel] = got
    assert not bad, f"unsafe deserialisation: {bad}"


def test_the_converter_is_the_one_place_with_an_unpickler():
    """The allow-list is not stale: the converter really holds the (only) unpickler."""
    got = findings(ROOT.joinpath("harnet/convert/safepickle.py").read_text(encoding="utf-8"), "elsewhere.py")
    assert any("Unpickler" in g for g in got), got


@pytest.mark.parametrize(
    "snippet, flagged",
    [
        ("import pickle\npickle.load(f)", True),
        ("import pickle as p\np.loads(b)", True),
        ("from pickle import load\nload(f)", True),
        ("from pickle import Unpickler\nUnpickler(f).load()", True),
        ("import pickle\nclass U(pickle.Unpickler): pass", True),
        ("import dill\ndill.loads(b)", True),
        ("import joblib\njoblib.load(p)", True),
        ("import pandas as pd\npd.read_pickle(p)", True),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", True),
        ("import numpy as np\nnp.load(p, allow_pickle=flag)", True),
        ("import torch\ntorch.load(p)", True),
        ("import torch\ntorch.load(p, weights_only=False)", True),
        ("import torch\ntorch.load(p, weights_only=flag)", True),
        ("from torch import load\nload(p)", True),
        ("import torch\ntorch.hub.load_state_dict_from_url(u)", True),
        ("import marshal\nmarshal.loads(b)", True),
        ("import yaml\nyaml.load(s)", True),
        # safe forms
        ("import torch\ntorch.load(p, map_location='cpu', weights_only=True)", False),
        ("import numpy as np\nnp.load(p)", False),
        ("import numpy as np\nnp.load(p, allow_pickle=False)", False),
        ("import pickle\npickle.dumps(x)", False),
        ("import json\njson.load(f)", False),
        ("import yaml\nyaml.load(s, Loader=yaml.SafeLoader)", False),
        ("# pickle.load(f) in a comment\ns = 'torch.load(p)'", False),
    ],
)
def test_the_scanner_catches_what_it_should(snippet, flagged):
    assert bool(findings(snippet, "harnet/x.py")) is flagged, findings(snippet, "harnet/x.py")


def test_window_tables_agree():
    """One table of architecture windows (harnet.arch, torch-free): model and modeldir use it."""
    from harnet import arch, model, modeldir

    assert modeldir.WINDOW_SEC is arch.WINDOW_SEC and model.WINDOW_SEC is arch.WINDOW_SEC
    assert arch.WINDOW_SEC == {"harnet5": 5, "harnet10": 10, "harnet30": 30}
