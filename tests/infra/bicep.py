"""Reading Bicep templates through tree-sitter-bicep's syntax tree, so tests assert on structure, not on text."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser, Tree

ROOT = Path(__file__).resolve().parent.parent.parent
BICEP = ROOT / "infra" / "bicep"
PARSER = Parser(Language(tree_sitter_bicep.language()))


def bicep_files() -> list[Path]:
    return sorted(BICEP.rglob("*.bicep"))


@lru_cache
def parse(path: Path) -> Tree:
    return PARSER.parse(path.read_bytes())


def error_nodes(node: Node) -> list[Node]:
    found = [node] if node.type == "ERROR" or node.is_missing else []
    for child in node.children:
        found += error_nodes(child)
    return found


@dataclass
class Resource:
    name: str
    type: str
    body: Node
    file: Path


def resources(path: Path) -> list[Resource]:
    found = []
    for node in _walk(parse(path).root_node):
        if node.type != "resource_declaration":
            continue
        name = next(c for c in node.children if c.type == "identifier").text.decode()
        kind = next(c for c in node.children if c.type == "string").text.decode().strip("'")
        body = _body(node)
        if body is not None:
            found.append(Resource(name, kind.split("@")[0], body, path))
    return found


def resource(path: Path, name: str) -> Resource:
    return next(r for r in resources(path) if r.name == name)


def value(node: Node, dotted: str) -> str | None:
    """The source text of a nested object property (`properties.encryption.requireInfrastructureEncryption`)."""
    for key in dotted.split("."):
        node = _property(node, key)
        if node is None:
            return None
    return node.text.decode()


def _property(obj: Node, key: str) -> Node | None:
    if obj.type != "object":
        return None
    for prop in obj.children:
        if prop.type == "object_property" and prop.children[0].text.decode().strip("'") == key:
            return prop.children[-1]
    return None


def _body(node: Node) -> Node | None:
    """A resource's object: directly, or inside a for loop or an if."""
    for child in node.children:
        if child.type == "object":
            return child
        if child.type in ("for_statement", "if_statement"):
            return _body(child)
    return None


def _walk(node: Node):
    yield node
    for child in node.children:
        yield from _walk(child)


def all_nodes(path: Path):
    return _walk(parse(path).root_node)
