"""The bench's file shapes (bench/shapes.py) hold the plain file's rows, read back by the platform's own reader:
a shape's figure compares like with like only if it does."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench import shapes
from bench.run import POLICY, verdict
from devtools import synthetic
from shared.ingest.formats import TextProfile, read_table, scan_text
from shared.policy.loader import load_policy


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small bench file written as bench.run.generate writes it (csv.writer, CRLF)."""
    piece = synthetic.generate(load_policy(POLICY), "bench-partner", "sessions", rows=400, seed=3, invalid_rate=0.01)
    path = tmp_path_factory.mktemp("shapes") / "sessions-400.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(piece.header)
        writer.writerows([row[name] for name in piece.header] for row in piece.rows)
    return path


def rows_of(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open("rb") as fh:
        header, rows, _ = read_table(fh, 10_000)
        return header, [cells for _, cells in rows]


@pytest.mark.parametrize("shape", [s for s in shapes.SHAPES if s != "plain"])
def test_each_shape_holds_the_plain_rows(plain: Path, shape: str) -> None:
    header, expected = rows_of(plain)
    address, name = header.index("address"), header.index("child_name")
    if shape == "quoted":
        expected = [[*cells[:address], cells[address].replace(" ", ", ", 1), *cells[address + 1:]]
                    for cells in expected]
    if shape in ("accented", "cp1252"):
        expected = [[*cells[:name], cells[name].replace("Chloe ", "Chloé "), *cells[name + 1:]] for cells in expected]
    if shape == "xlsx":  # a cell of spaces alone (a spoiled row's blank reference) comes back from a workbook empty
        expected = [[cell if cell.strip() else "" for cell in cells] for cells in expected]
    assert rows_of(shapes.derive(plain, shape)) == (header, expected)


def test_the_shapes_are_what_they_say(plain: Path) -> None:
    def profile(shape: str) -> TextProfile:
        with shapes.derive(plain, shape).open("rb") as fh:
            return scan_text(fh)

    raw = {shape: shapes.derive(plain, shape).read_bytes() for shape in shapes.SHAPES}
    assert b"\r\n" not in raw["lf"] and raw["plain"].count(b"\r\n") == raw["lf"].count(b"\n")
    assert b'"' not in raw["plain"] and b'", ' not in raw["quoted"] and b', ' in raw["quoted"]
    assert raw["bom"].startswith(b"\xef\xbb\xbf") and not raw["plain"].startswith(b"\xef\xbb\xbf")
    assert "Chloé".encode() in raw["accented"] and "Chloé".encode("cp1252") in raw["cp1252"]
    assert profile("cp1252").encoding == "cp1252"
    assert profile("accented").encoding == "utf-8-sig"
    assert raw["xlsx"].startswith(b"PK\x03\x04")


def test_a_verdict_says_by_how_much_a_target_is_missed() -> None:
    assert verdict(420_000, 400_000) == "met"
    assert verdict(100_000, 400_000) == "**missed**: 0.25 of the target"
    assert verdict(12.5, 10, at_most=True) == "**missed**: 0.80 of the target"
    assert verdict(0.15, 0.2, at_most=True) == "met"
