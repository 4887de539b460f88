"""The orchestrator's subpackages are stages that import only earlier stages, and the training
core never imports the orchestrator."""

import ast
from pathlib import Path

import orchestrator
import spd

STAGES = ["sweep", "state", "backends", "search", "report", "cli"]
"""The data flow: each stage may import the ones before it."""


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_every_module_belongs_to_a_stage() -> None:
    root = Path(orchestrator.__file__).parent
    stray = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.parent == root and p.name != "__init__.py"
    ]
    assert stray == []
    assert sorted(p.name for p in root.iterdir() if (p / "__init__.py").exists()) == sorted(STAGES)


def test_stages_import_only_earlier_stages() -> None:
    root = Path(orchestrator.__file__).parent
    backwards = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            continue
        stage = STAGES.index(parts[0])
        for module in imported_modules(path):
            if module.startswith("orchestrator."):
                other = module.split(".")[1]
                if STAGES.index(other) > stage:
                    backwards.append(f"{path.relative_to(root)} imports {module}")
    assert backwards == []


def test_the_core_never_imports_the_orchestrator() -> None:
    root = Path(spd.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if any(m.split(".")[0] == "orchestrator" for m in imported_modules(path))
    ]
    assert offenders == []
