"""The layering rule, enforced: library modules never import the CLI layer (``commands/``), and the
latency-table package does not depend on the bench package (both read ``edgevision.results``)."""

from __future__ import annotations

import ast
from pathlib import Path

import edgevision

PACKAGE = Path(edgevision.__file__).parent


def _imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Absolute dotted names of every module ``path`` imports (relative imports resolved)."""
    package = ["edgevision", *path.relative_to(root).with_suffix("").parts][:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import commands`
    return names


def _violations(forbidden: str, allowed_inside: tuple[str, ...], root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(allowed_inside):
            continue
        bad = sorted(name for name in _imports(path, root) if name == forbidden or name.startswith(forbidden + "."))
        found += [f"{relative} imports {name}" for name in bad]
    return found


def test_library_modules_never_import_commands():
    assert _violations("edgevision.commands", ("commands/", "cli.py")) == []


def test_latency_tables_do_not_import_bench():
    assert [v for v in _violations("edgevision.bench", ("bench/", "commands/", "cli.py")) if v.startswith("lut/")] == []


def test_the_rule_detects_a_violation(tmp_path):
    """The checker itself must be able to fail: relative and absolute imports of commands are caught."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "commands").mkdir()
    (tmp_path / "bench" / "report.py").write_text("from ..commands._common import human\n", encoding="utf-8")
    (tmp_path / "training.py").write_text("import edgevision.commands.bench\nfrom . import commands\n", encoding="utf-8")
    (tmp_path / "commands" / "bench.py").write_text("from ._common import human\n", encoding="utf-8")  # allowed
    assert _violations("edgevision.commands", ("commands/", "cli.py"), tmp_path) == [
        "bench/report.py imports edgevision.commands._common",
        "bench/report.py imports edgevision.commands._common.human",
        "training.py imports edgevision.commands",
        "training.py imports edgevision.commands.bench",
    ]
