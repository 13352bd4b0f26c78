"""The structure rules, checked on the source (AST, no imports): they hold in CI because they run here.

- no import circle among harnet's and the CLI's modules, imports inside functions included
  (``if TYPE_CHECKING:`` blocks never run, so they do not count);
- no module imports another module's private (``_name``) names, or reaches them as attributes;
- no module in harnet/ or cli/ is over 500 lines;
- the layers of docs/architecture.md: arrows only point down (import-linter's contracts in
  pyproject.toml, ``[tool.importlinter]``), and the backends never import ``harnet.onnx``.

Each checker also runs on a deliberately bad example, so that none of them can pass vacuously.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
#: top-level folder -> import name (cli/ is installed as harnet_cli)
PACKAGES = {"harnet": "harnet", "cli": "harnet_cli"}


def module_files(root: Path, packages: dict[str, str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the given top-level folders."""
    out = {}
    for folder, name in packages.items():
        for p in sorted((root / folder).rglob("*.py")):
            parts = [name, *p.relative_to(root / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every executed import node (module level and inside functions), skipping TYPE_CHECKING blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _base(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in modules:
            return cand
    return None


def analyse(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """(import graph between our modules, private-name findings)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"
        aliases: dict[str, str] = {}  # local name -> our module it is bound to
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    target = _known(a.name, modules)
                    if target:
                        graph[mod].add(target)
                        if a.asname:
                            aliases[a.asname] = target
                        if any(p.startswith("_") and not p.startswith("__") for p in a.name.split(".")[1:]):
                            private.append(f"{mod}: import {a.name}")
                continue
            base = _base(mod, is_pkg, node)
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in modules:  # a submodule
                    graph[mod].add(sub)
                    aliases[a.asname or a.name] = sub
                    continue
                target = _known(base, modules)
                if target is None:
                    continue
                graph[mod].add(target)
                if a.name.startswith("_") and not a.name.startswith("__") and target != mod:
                    private.append(f"{mod}: from {base} import {a.name}")
        for node in ast.walk(tree):  # module._private as an attribute
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                private.append(f"{mod}: {node.value.id}.{node.attr} ({aliases[node.value.id]})")
        graph[mod].discard(mod)
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    st: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        st.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    st.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = st.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def oversized(modules: dict[str, Path], limit: int = MAX_LINES) -> dict[str, int]:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in modules.items()}
    return {m: n for m, n in sizes.items() if n > limit}


@pytest.fixture(scope="module")
def ours():
    modules = module_files(ROOT, PACKAGES)
    assert len(modules) > 60 and "harnet.predictor" in modules and "harnet_cli.main" in modules
    return modules, *analyse(modules)


def test_no_import_circles(ours):
    modules, graph, _ = ours
    assert sum(len(v) for v in graph.values()) > 150  # the graph is really built
    assert cycles(graph) == []


def test_no_private_names_across_modules(ours):
    _, _, private = ours
    assert private == []


def test_no_module_over_500_lines(ours):
    modules, _, _ = ours
    assert oversized(modules) == {}


# ---- the checkers catch what they should -------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return module_files(root, {"pkg": "pkg"})


def test_checkers_catch_bad_examples(tmp_path):
    modules = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "def f():\n    from .c import g\n",  # inside a function: still counted
        "pkg/c.py": "from pkg.a import x\ndef g(): ...\n",
        "pkg/d.py": "from .e import _hidden\nimport pkg.e as E\nE._other()\n",
        "pkg/e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\n_hidden = 1\n",
        "pkg/sub/__init__.py": "from .leaf import z\n",
        "pkg/sub/leaf.py": "from .. import e\nz = 1\n" + "x = 1\n" * 600,
    })
    graph, private = analyse(modules)
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]  # e <-> d only under TYPE_CHECKING: no circle
    assert graph["pkg.sub.leaf"] == {"pkg.e"} and graph["pkg.sub"] == {"pkg.sub.leaf"}
    assert private == ["pkg.d: from pkg.e import _hidden", "pkg.d: E._other (pkg.e)"]
    assert oversized(modules) == {"pkg.sub.leaf": 602}


# ---- layers (import-linter) ---------------------------------------------------------------------


def _lint(config: Path, cwd: Path) -> tuple[int, str]:
    """Run import-linter in a child process: its CLI reconfigures logging with ``dictConfig``,
    which disables every logger that exists (harnet's too) for the rest of an in-process run."""
    import os
    import subprocess
    import sys

    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    r = subprocess.run([sys.executable, "-c", code, str(config)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_layers_point_down():
    pytest.importorskip("importlinter", reason="import-linter is in the test extra: pip install -e '.[test]'")
    code, out = _lint(ROOT / "pyproject.toml", ROOT)
    assert code == 0, out
    assert "Contracts: 2 kept, 0 broken" in out, out


def test_layers_contract_catches_an_upward_import(tmp_path):
    pytest.importorskip("importlinter", reason="import-linter is in the test extra: pip install -e '.[test]'")
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/high.py": "",
        "pkg/low.py": "def f():\n    from . import high\n",  # an arrow up, inside a function
    })
    (tmp_path / "lint.toml").write_text(textwrap.dedent("""
        [tool.importlinter]
        root_packages = ["pkg"]

        [[tool.importlinter.contracts]]
        name = "down only"
        type = "layers"
        layers = ["pkg.high", "pkg.low"]
    """))
    code, out = _lint(tmp_path / "lint.toml", tmp_path)
    assert code != 0 and "pkg.low -> pkg.high" in out, out
