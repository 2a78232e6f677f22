"""Arrows run one way: each package imports only the shared package and the stages before it.

    tokenwatch (shared) <- state_service <- ingestion <- quality <- reporting <- orchestration
    sandbox and the command line (tokenwatch/cli) may use all of them; nothing uses them.

The test reads every module's imports (top-level and inside functions) with ``ast``: a lazy
import is an arrow too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("tokenwatch", "state_service", "ingestion", "quality", "reporting", "orchestration")
OURS = {*ORDER, "sandbox"}


def allowed(module: str) -> set[str]:
    """What the package of ``module`` (a dotted name) may import."""
    top = module.split(".")[0]
    if top == "sandbox" or module.startswith("tokenwatch.cli"):
        return OURS
    return set(ORDER[: ORDER.index(top) + 1])


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for package in sorted(OURS):
        for path in sorted((ROOT / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out.append((dotted.removesuffix(".__init__"), path))
    return out


def wrong_imports(module: str, path: Path) -> list[str]:
    wrong = []
    ok = allowed(module)
    for line, name in imports(path):
        if name.split(".")[0] in OURS and name.split(".")[0] not in ok:
            wrong.append(f"{module}:{line} imports {name}")
        elif name.startswith("tokenwatch.cli") and not module.startswith(("tokenwatch.cli",
                                                                           "sandbox")):
            wrong.append(f"{module}:{line} imports the command line ({name})")
    return wrong


def violations() -> list[str]:
    return [w for module, path in modules() for w in wrong_imports(module, path)]


def test_every_package_is_scanned():
    names = {m for m, _ in modules()}
    for package in OURS:
        assert package in names, f"{package}/ has no __init__.py (a namespace by accident)"
    assert len(names) > 80


def test_no_folder_of_code_is_a_namespace_package_by_accident():
    accidental = sorted(str(d.relative_to(ROOT)) for package in OURS
                        for d in [ROOT / package, *(ROOT / package).rglob("*")]
                        if d.is_dir() and any(d.glob("*.py"))
                        and not (d / "__init__.py").exists())
    assert accidental == []


def test_every_module_imports():
    """A moved module leaves no import behind: every module of every package loads (an import
    inside a function included: each ``from x import y`` names a module that exists)."""
    import importlib
    import importlib.util

    missing = []
    for module, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
                base = node.module
            elif isinstance(node, ast.Import):
                names, base = [a.name for a in node.names], None
            else:
                continue
            for name in names:
                if name.split(".")[0] not in OURS:
                    continue
                if base is None and importlib.util.find_spec(name) is None:
                    missing.append(f"{module}:{node.lineno} imports {name}: no such module")
                elif base is not None and importlib.util.find_spec(base) is None:
                    missing.append(f"{module}:{node.lineno} imports from {base}: no such module")
                elif base is not None and not (
                        hasattr(importlib.import_module(base), name.rsplit(".", 1)[1])
                        or importlib.util.find_spec(name) is not None):
                    missing.append(f"{module}:{node.lineno} imports {name}: {base} has no "
                                   f"{name.rsplit('.', 1)[1]}")
    assert missing == []
    for module, _ in modules():
        if not module.startswith("sandbox.intake"):  # (a script's __main__ guard aside)
            importlib.import_module(module)


def test_arrows_run_one_way():
    assert violations() == []


@pytest.mark.parametrize(("module", "target", "ok"), [
    ("ingestion.run", "orchestration.resources", False),
    ("state_service.app", "ingestion.records", False),
    ("tokenwatch.config", "state_service.roles", False),
    ("reporting.kpis", "sandbox.stack", False),
    ("orchestration.resources", "sandbox.stack", False),
    ("quality.suites", "tokenwatch.config", True),
    ("sandbox.demo", "orchestration.definitions", True),
    ("tokenwatch.cli.ingest", "ingestion.run", True),
])
def test_the_rule_itself(module, target, ok):
    assert (target.split(".")[0] in allowed(module)) is ok


def test_a_backward_import_is_caught_even_inside_a_function(tmp_path):
    """A stage module that imports orchestration lazily, and a stage that imports the command
    line: both named, with the line."""
    bad = tmp_path / "probe.py"
    bad.write_text("import json\n\ndef f():\n    from orchestration.resources import W\n"
                   "    import tokenwatch.cli.ingest\n")
    assert wrong_imports("ingestion.probe", bad) == [
        "ingestion.probe:4 imports orchestration.resources",
        "ingestion.probe:5 imports the command line (tokenwatch.cli.ingest)"]
    assert wrong_imports("tokenwatch.probe", bad) == [
        "tokenwatch.probe:4 imports orchestration.resources",
        "tokenwatch.probe:5 imports the command line (tokenwatch.cli.ingest)"]
    assert wrong_imports("sandbox.probe", bad) == []
