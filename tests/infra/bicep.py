"""Reading Bicep templates through tree-sitter-bicep's syntax tree, so tests assert on structure, not on text."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser, Tree

ROOT = Path(__file__).resolve().parent.parent.parent
BICEP = ROOT / "infra" / "bicep"
PARSER = Parser(Language(tree_sitter_bicep.language()))
# `extension microsoftGraphV1` (Bicep 0.30+) is newer than tree-sitter-bicep 1.1 and checkov's Bicep parser, which
# both reject it. It declares no resource, so they read each file with those lines blanked: same length, so line
# numbers hold. `extensions()` reads what was blanked, for the tests that assert on it.
EXTENSION = re.compile(rb"^extension[ \t]+(\w+)[ \t]*$", re.M)


def bicep_files() -> list[Path]:
    return sorted(BICEP.rglob("*.bicep"))


def source(path: Path) -> bytes:
    """The file as the parsers can read it: its `extension` statements blanked."""
    return EXTENSION.sub(lambda match: b" " * len(match[0]), path.read_bytes())


def extensions(path: Path) -> list[str]:
    """The extension aliases a file declares (`extension microsoftGraphV1` -> microsoftGraphV1)."""
    return [match.decode() for match in EXTENSION.findall(path.read_bytes())]


def readable_copy(destination: Path) -> Path:
    """infra/bicep copied to `destination` as the parsers can read it, for checkov to scan."""
    shutil.copytree(BICEP, destination)
    for path in destination.rglob("*.bicep"):
        path.write_bytes(source(path))
    return destination


@lru_cache
def parse(path: Path) -> Tree:
    return PARSER.parse(source(path))


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


def node(obj: Node, dotted: str) -> Node | None:
    """The syntax node of a nested object property, for values that are arrays, loops or objects."""
    for key in dotted.split("."):
        found = _property(obj, key)
        if found is None:
            return None
        obj = found
    return obj


def variable(path: Path, name: str) -> Node:
    """The value of `var <name> = ...` in a file."""
    for declaration in parse(path).root_node.children:
        if declaration.type == "variable_declaration" and declaration.children[1].text.decode() == name:
            return declaration.children[-1]
    raise LookupError(f"{path.name} declares no var {name}")


def items(array: Node) -> list[Node]:
    """The elements of an array literal (or the body of a `[for ...: {...}]` loop, as one element)."""
    if array.type == "for_statement":
        return [child for child in array.children if child.type == "object"]
    return [child for child in array.children if child.type not in ("[", "]", ",", "comment")]


def text(node: Node | None) -> str | None:
    """A node's source; a string literal without its quotes."""
    if node is None:
        return None
    source = node.text.decode()
    return source[1:-1] if node.type == "string" and "${" not in source else source


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
