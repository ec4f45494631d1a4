"""Disclosure control for anything published: primary suppression, secondary suppression, and an attack that
proves the result.

Tables are counts with their margins (one-way: cells and a total; two-way: cells, row and column totals and a
grand total). Tables may share margins (two tables by area share the area totals); they are then protected
together. Primary suppression hides small counts by a rule; secondary suppression hides further cells until no
hidden cell can be worked out. Before anything is published it is attacked: for each hidden cell, a linear
programme finds the smallest and largest values consistent with everything published (published counts, exact or
within their rounding, and every margin relation). A hidden cell whose range is narrower than the rule's
threshold fails; a table set that cannot be protected is blocked with a reason, never published.

Markers follow the DfE's statistical symbols: `c` for a suppressed (confidential) value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from shared.policy.disclosure_rules import Rule

SUPPRESSED = "c"

Key: TypeAlias = tuple[str | int, ...]
"""One published quantity: (table, row, column) for an inner cell; ("row" | "col", margin, index) for a row or
column total and ("total", margin) for a grand total, where margin is the shared margin's name or the table's."""


@dataclass
class Table:
    """A one-way (one row) or two-way table of counts. Tables naming the same `row_margin` or `col_margin` share
    those totals (and the grand total) and are protected together."""

    name: str
    cells: list[list[int]]
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    row_margin: str | None = None
    col_margin: str | None = None

    @property
    def one_way(self) -> bool:
        return len(self.cells) == 1

    def keys(self) -> dict[Key, int]:
        """Every published quantity of the table, keyed so that shared margins get one key."""
        rows = self.row_margin or self.name
        cols = self.col_margin or self.name
        total = self.row_margin or self.col_margin or self.name
        keys: dict[Key, int] = {}
        for i, row in enumerate(self.cells):
            for j, value in enumerate(row):
                keys[(self.name, i, j)] = value
            if not self.one_way:
                keys[("row", rows, i)] = sum(row)
        if not self.one_way:
            for j in range(len(self.cells[0])):
                keys[("col", cols, j)] = sum(row[j] for row in self.cells)
        keys[("total", total)] = sum(map(sum, self.cells))
        return keys

    def relations(self) -> list[tuple[list[Key], Key]]:
        """Sums that must hold: (parts, whole)."""
        rows = self.row_margin or self.name
        cols = self.col_margin or self.name
        total = ("total", self.row_margin or self.col_margin or self.name)
        if self.one_way:
            return [([(self.name, 0, j) for j in range(len(self.cells[0]))], total)]
        relations: list[tuple[list[Key], Key]] = [([(self.name, i, j) for j in range(len(row))], ("row", rows, i))
                                                  for i, row in enumerate(self.cells)]
        relations += [([(self.name, i, j) for i in range(len(self.cells))], ("col", cols, j))
                      for j in range(len(self.cells[0]))]
        relations.append(([("row", rows, i) for i in range(len(self.cells))], total))
        return relations


@dataclass
class Protection:
    published: dict[Key, int | str]
    """Every quantity as published: a (possibly rounded) count or the marker `c`."""
    primary: set[Key]
    secondary: set[Key]
    ranges: dict[Key, tuple[float, float]]
    """For each hidden quantity, the smallest and largest value the attack found consistent."""
    blocked: str | None = None

    @property
    def ok(self) -> bool:
        return self.blocked is None

    def cell(self, table: Table, i: int, j: int) -> int | str:
        return self.published[(table.name, i, j)]

    def row_total(self, table: Table, i: int) -> int | str:
        return self.published[("row", table.row_margin or table.name, i)]

    def col_total(self, table: Table, j: int) -> int | str:
        return self.published[("col", table.col_margin or table.name, j)]

    def total(self, table: Table) -> int | str:
        return self.published[("total", table.row_margin or table.col_margin or table.name)]

    def min_width(self) -> float:
        return min((hi - lo for lo, hi in self.ranges.values()), default=math.inf)


class _Model:
    """The linear relations between every published quantity of a set of tables."""

    def __init__(self, tables: Sequence[Table]) -> None:
        self.values: dict[Key, int] = {}
        for table in tables:
            for key, value in table.keys().items():
                if key in self.values and self.values[key] != value:
                    raise ValueError(f"tables disagree on the shared total {key}")
                self.values[key] = value
        self.keys = list(self.values)
        self.index = {key: n for n, key in enumerate(self.keys)}
        relations = {(tuple(parts), whole) for table in tables for parts, whole in table.relations()}
        self.relations = sorted(relations, key=str)
        import numpy as np  # imported here: only protecting a table needs the numerical stack

        matrix = np.zeros((len(self.relations), len(self.keys)))
        for r, (parts, whole) in enumerate(self.relations):
            for part in parts:
                matrix[r, self.index[part]] = 1.0
            matrix[r, self.index[whole]] = -1.0
        self.matrix = matrix

    def neighbours(self, key: Key) -> set[Key]:
        return {k for parts, whole in self.relations if key in (*parts, whole) for k in (*parts, whole)} - {key}


def attack(model: _Model, published: dict[Key, int], hidden: set[Key],
           rule: Rule) -> dict[Key, tuple[float, float]]:
    """For each hidden quantity, its smallest and largest value consistent with everything published."""
    import numpy as np
    from scipy.optimize import linprog

    bounds = [(0.0, None) if key in hidden else rule.bounds(published[key]) for key in model.keys]
    zero = np.zeros(len(model.relations))
    ranges: dict[Key, tuple[float, float]] = {}
    for key in hidden:
        objective = np.zeros(len(model.keys))
        objective[model.index[key]] = 1.0
        low = linprog(objective, A_eq=model.matrix, b_eq=zero, bounds=bounds, method="highs")
        high = linprog(-objective, A_eq=model.matrix, b_eq=zero, bounds=bounds, method="highs")
        top = math.inf if high.status == 3 else -high.fun
        ranges[key] = (low.fun if low.status == 0 else 0.0, top)
    return ranges


def protect(tables: Sequence[Table], rule: Rule) -> Protection:
    """Suppress, attack, and suppress more until every hidden quantity is safe, or block."""
    model = _Model(tables)
    values = model.values
    published = {key: rule.publish(value) for key, value in values.items()}
    primary = {key for key, value in values.items() if rule.hides(value)}
    hidden = set(primary)
    totals = [value for key, value in values.items() if key[0] == "total"]
    if any(0 < total < rule.smallest_published for total in totals):
        return _blocked(published, primary, "the table counts fewer people than the rule allows to publish at all")
    for _ in range(len(model.keys) + 1):
        ranges = attack(model, published, hidden, rule)
        failing = [key for key, (lo, hi) in ranges.items() if hi - lo < rule.smallest_published]
        if not failing:
            return Protection(_render(published, hidden), primary, hidden - primary, ranges)
        complement = _complement(model, failing, hidden, values)
        if complement is None:
            return _blocked(published, primary, "no further cell can be hidden to protect the small counts")
        hidden.add(complement)
    return _blocked(published, primary, "secondary suppression did not converge")


def _complement(model: _Model, failing: list[Key], hidden: set[Key],
                values: dict[Key, int]) -> Key | None:
    """The cheapest quantity to hide next: related to a failing cell, an inner cell before a total, a non-zero
    count before a zero, the smallest first."""
    candidates = {key for cell in failing for key in model.neighbours(cell)} - hidden
    if not candidates:
        return None
    return min(candidates, key=lambda key: (_is_margin(key), values[key] == 0, values[key], str(key)))


def _is_margin(key: Key) -> bool:
    """Inner cells are keyed (table, row, column); totals ("row" | "col" | "total", margin name, ...)."""
    return isinstance(key, tuple) and isinstance(key[1], str)


def _render(published: dict[Key, int], hidden: set[Key]) -> dict[Key, int | str]:
    return {key: SUPPRESSED if key in hidden else value for key, value in published.items()}


def _blocked(published: dict[Key, int], primary: set[Key], reason: str) -> Protection:
    return Protection({key: SUPPRESSED for key in published}, primary, set(), {}, blocked=reason)
