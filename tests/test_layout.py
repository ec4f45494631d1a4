"""The shape of shared/: one package per capability, and imports that point downward only.

A module may import from its own package and from packages below it, never from one above: platform at the
bottom, then identity, policy, ingest, retention, rights, publishing, with runtime and cli composing them at the
top. Nothing in shared/ imports azure.functions, functions/ or devtools/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent / "shared"
LAYERS = ["platform", "identity", "policy", "ingest", "retention", "rights", "publishing", "runtime", "cli"]


def layer_of(module: str) -> str:
    """`shared.ingest.pipeline` is in layer `ingest`; `shared.runtime` in `runtime`."""
    return module.split(".")[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(SHARED.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (imports inside functions count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "shared":
                found += [(node.lineno, f"shared.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


MODULES = sorted(path for path in SHARED.rglob("*.py") if path != SHARED / "__init__.py")


def upward_imports(path: Path, layers: list[str]) -> list[str]:
    own = layers.index(layer_of(module_name(path)))
    problems = []
    for line, module in imported_modules(path):
        if module.split(".")[0] in ("functions", "devtools") or module.startswith("azure.functions"):
            problems.append(f"{path.name}:{line} imports {module}, which shared/ must never import")
        elif module.startswith("shared.") and layers.index(layer_of(module)) > own:
            problems.append(f"{path.name}:{line} imports {module}, a package above its own")
    return problems


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_imports_point_downward_only(path: Path) -> None:
    assert upward_imports(path, LAYERS) == []


def test_every_module_sits_in_a_known_layer() -> None:
    unknown = {module_name(path) for path in MODULES if layer_of(module_name(path)) not in LAYERS}
    assert unknown == set(), "a new package needs its place in LAYERS (and the README's layout table)"


def test_the_check_notices_an_upward_import() -> None:
    """The check itself can fail: the data contracts seen from a layering where policy sits below identity."""
    contracts = SHARED / "policy" / "contracts.py"
    reordered = ["platform", "policy", "identity", *LAYERS[3:]]
    assert any("shared.identity" in problem for problem in upward_imports(contracts, reordered))
