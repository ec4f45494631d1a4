"""Disclosure control: primary rules, secondary suppression, and the linear-programming attack, including
property-based tests over random tables with an attack written independently of shared/publishing/disclosure.py."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from shared.policy.disclosure_rules import Rule
from shared.publishing.disclosure import SUPPRESSED, Table, protect


def test_one_way_table_with_its_total():
    table = Table("t", [[3, 40, 25, 60]])
    result = protect([table], Rule("threshold", 5))
    hidden = [j for j in range(4) if result.cell(table, 0, j) == SUPPRESSED]
    assert len(hidden) >= 2 and 0 in hidden and result.total(table) == 128
    low, high = result.ranges[("t", 0, 0)]
    assert high - low >= 5


def test_two_way_table_hides_a_rectangle_and_the_3_cannot_be_recovered():
    table = Table("t", [[3, 10, 20], [15, 12, 30]])
    result = protect([table], Rule("threshold", 5))
    hidden = {(i, j) for i in range(2) for j in range(3) if result.cell(table, i, j) == SUPPRESSED}
    rows, cols = {i for i, _ in hidden}, {j for _, j in hidden}
    assert hidden == {(i, j) for i in rows for j in cols} and len(rows) == 2 and len(cols) == 2
    assert all(result.row_total(table, i) != SUPPRESSED for i in range(2))
    assert all(result.col_total(table, j) != SUPPRESSED for j in range(3))
    assert independent_attack([table], result, Rule("threshold", 5))[("t", 0, 0)] >= 5


def test_hospital_statistics_rule():
    rule = Rule("hospital")
    assert [rule.hides(v) for v in (0, 3, 7, 8, 13)] == [False, True, True, False, False]
    assert [rule.publish(v) for v in (0, 8, 13)] == [0, 10, 15]
    table = Table("t", [[0, 3, 7, 8, 13, 40]])
    result = protect([table], rule)
    shown = [result.cell(table, 0, j) for j in range(6)]
    assert shown[0] == 0 and shown[1] == shown[2] == SUPPRESSED and shown[3] == 10 and shown[4] == 15


def test_tables_sharing_a_margin_are_protected_together():
    by_sex = Table("by_sex", [[3, 30], [20, 25]], row_margin="area")
    by_age = Table("by_age", [[10, 23], [22, 23]], row_margin="area")
    rule = Rule("threshold", 5)
    result = protect([by_sex, by_age], rule)
    assert result.ok
    assert min(independent_attack([by_sex, by_age], result, rule).values()) >= 5


def test_a_table_that_cannot_be_protected_is_blocked_with_a_reason():
    result = protect([Table("t", [[2, 1]])], Rule("threshold", 5))
    assert not result.ok and "fewer" in result.blocked
    assert set(result.published.values()) == {SUPPRESSED}


tables = st.integers(1, 4).flatmap(lambda rows: st.integers(2, 4).flatmap(
    lambda cols: st.lists(st.lists(st.integers(0, 40), min_size=cols, max_size=cols), min_size=rows,
                          max_size=rows)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cells=tables, rule=st.sampled_from([Rule("threshold", 5), Rule("threshold", 10), Rule("hospital"),
                                           Rule("ons-10-5")]))
def test_no_published_table_lets_the_attack_pin_a_hidden_cell(cells, rule):
    table = Table("t", cells)
    result = protect([table], rule)
    if not result.ok:
        assert set(result.published.values()) == {SUPPRESSED}, "a blocked table publishes nothing"
        return
    for key, value in result.published.items():
        if value != SUPPRESSED and key in result.primary:
            raise AssertionError("a small count was published")
    widths = independent_attack([table], result, rule)
    assert all(width >= rule.smallest_published for width in widths.values())


def independent_attack(tables: list[Table], result, rule: Rule) -> dict[tuple, float]:
    """The attacker's linear programme, written from the published tables alone: unknowns for every cell and
    total, equalities for every sum, published values fixed (or within their rounding), hidden ones >= 0."""
    names: list[tuple] = []
    rows_of: dict[tuple, list[tuple]] = {}
    for table in tables:
        margin_r, margin_c = table.row_margin or table.name, table.col_margin or table.name
        total = ("total", table.row_margin or table.col_margin or table.name)
        cells = [[(table.name, i, j) for j in range(len(table.cells[0]))] for i in range(len(table.cells))]
        if table.one_way:
            rows_of[total] = cells[0]
        else:
            for i, row in enumerate(cells):
                rows_of[("row", margin_r, i)] = row
            for j in range(len(cells[0])):
                rows_of[("col", margin_c, j)] = [row[j] for row in cells]
            rows_of[total] = [("row", margin_r, i) for i in range(len(cells))]
        names += [key for row in cells for key in row]
    names += sorted({key for key in rows_of} | {k for parts in rows_of.values() for k in parts} - set(names), key=str)
    position = {key: n for n, key in enumerate(names)}
    equalities = np.zeros((len(rows_of), len(names)))
    for r, (whole, parts) in enumerate(rows_of.items()):
        equalities[r, position[whole]] = -1
        for part in parts:
            equalities[r, position[part]] = 1
    bounds = []
    for key in names:
        shown = result.published[key]
        bounds.append((0, None) if shown == SUPPRESSED else
                      ((max(0, shown - 2), shown + 2) if rule.rounds else (shown, shown)))
    widths = {}
    for key in names:
        if result.published[key] != SUPPRESSED:
            continue
        goal = np.zeros(len(names))
        goal[position[key]] = 1
        low = linprog(goal, A_eq=equalities, b_eq=np.zeros(len(rows_of)), bounds=bounds, method="highs")
        high = linprog(-goal, A_eq=equalities, b_eq=np.zeros(len(rows_of)), bounds=bounds, method="highs")
        widths[key] = (math.inf if high.status == 3 else -high.fun) - low.fun
    return widths
