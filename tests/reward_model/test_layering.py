"""The runtime sits under the stages: nothing in rmforge.reward_model imports train, evaluate, serve or cli."""

import ast
from pathlib import Path

import rmforge.reward_model

UPWARD = ("rmforge.train", "rmforge.evaluate", "rmforge.serve", "rmforge.cli", "rmforge.annotate",
          "rmforge.quickstart")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_reward_model_imports_nothing_above_it():
    root = Path(rmforge.reward_model.__file__).parent
    found = {f"{path.name}: {name}" for path in sorted(root.glob("*.py"))
             for name in imported_modules(path) if name.startswith(UPWARD)}
    assert found == set()
    assert {p.stem for p in root.glob("*.py")} >= {"tokenize", "rendered", "modeling", "packing", "attention",
                                                    "batching", "forward", "scorer"}
