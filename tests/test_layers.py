"""The layer rule (design §6), stated once by package prefix: imports only go downwards.

leaves (errors, model, ...) <- spec <- state <- run <- report <- cli. The emulator stands beside
the runner: it may import the leaves and spec/, never state/, run/, report/ or cli/. Pure layers
(leaves, spec, state) never import the network, async or terminal libraries.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

PKG = "i2v_pipeline"
ORDER = ["spec", "state", "run", "report", "cli"]
"""Sub-packages from the bottom up; any other module directly in the package is a leaf."""
EMULATOR_MAY_IMPORT = {"leaf", "spec", "emulator"}
PURE = {"leaf", "spec", "state"}
IMPURE_LIBS = {"aiohttp", "anyio", "click", "rich"}


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside the package ("i2v_pipeline.run.executor")."""
    parts = module.split(".")
    if len(parts) < 2:  # the package itself: its __init__ is the public façade
        return "facade"
    head = parts[1]
    if head in ORDER or head == "emulator":
        return head
    if head in ("__init__", "__main__"):
        return "facade"
    return "leaf"


def rank(layer: str) -> int:
    return 0 if layer == "leaf" else ORDER.index(layer) + 1


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in path, relative ones resolved."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            # `from . import x` imports the module x
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names if not node.module]
    return found


def violations(root: Path) -> list[str]:
    """Every import in the package under root that breaks the layer rule."""
    problems = []
    for path in sorted((root / PKG).rglob("*.py")):
        me = module_name(path, root)
        mine = layer_of(me)
        if mine == "facade":
            continue
        for line, target in imports_of(path, root):
            where = f"{path.relative_to(root)}:{line} imports {target}"
            top = target.split(".")[0]
            if top in IMPURE_LIBS and mine in PURE:
                problems.append(f"{where}: the {mine} layer stays free of {top}")
            if top != PKG:
                continue
            theirs = layer_of(target)
            if mine == "emulator":
                if theirs not in EMULATOR_MAY_IMPORT:
                    problems.append(f"{where}: the emulator imports only leaves and spec/")
            elif theirs == "facade":
                if mine != "cli":
                    problems.append(f"{where}: only cli/ imports the package façade")
            elif theirs == "emulator":
                if mine != "cli":
                    problems.append(f"{where}: only cli/ may start the emulator")
            elif rank(theirs) > rank(mine):
                problems.append(f"{where}: {mine} is below {theirs}")
    return problems


def test_imports_go_one_way() -> None:
    """No module in the package imports from a layer above its own."""
    assert violations(REPO) == []


@pytest.mark.parametrize(
    ("where", "text", "why"),
    [
        ("spec/upward.py", "from ..state import lock\n", "spec is below state"),
        ("state/upward.py", "from ..run.executor import Executor\n", "state is below run"),
        ("run/upward.py", "from ..cli import main\n", "run is below cli"),
        ("errors2.py", "from .spec import manifest\n", "leaf is below spec"),
        ("emulator/bad.py", "from ..run import retry\n", "the emulator imports only"),
        ("spec/net.py", "import aiohttp\n", "free of aiohttp"),
        ("run/emu.py", "from ..emulator import Emulator\n", "only cli/ may start"),
    ],
    ids=["spec-up", "state-up", "run-up", "leaf-up", "emulator-runner", "spec-aiohttp", "run-emu"],
)
def test_rule_catches_an_upward_import(tmp_path: Path, where: str, text: str, why: str) -> None:
    """Adding an upward import to a copy of the package makes the rule fail, naming it."""
    import shutil

    shutil.copytree(REPO / PKG, tmp_path / PKG, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / PKG / where
    target.write_text(text, encoding="utf-8")
    found = violations(tmp_path)
    assert len(found) == 1 and why in found[0] and where in found[0], found


def test_no_two_modules_share_a_name() -> None:
    """A module's name says one thing: no two modules (or a module and a package) share it."""
    pkg = REPO / PKG
    names = [p.stem for p in pkg.rglob("*.py") if p.stem not in ("__init__", "__main__")]
    names += [p.name for p in pkg.rglob("*") if p.is_dir() and (p / "__init__.py").exists()]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
