"""Disclosure control: primary rules, secondary suppression, and the linear-programming attack, including
property-based tests over random tables with an attack written independently of shared/publishing/disclosure.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from shared.policy.disclosure_rules import Dominance, Rule
from shared.publishing.disclosure import SUPPRESSED, Protection, Table, optimal_suppression, protect


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


def random_counts(rows: int, cols: int, seed: int) -> list[list[int]]:
    """Counts log-normal around 30: about one cell in seven below 10, as in bench/disclosure.py."""
    generator = np.random.default_rng(seed)
    return [[int(v) for v in row] for row in np.round(generator.lognormal(np.log(30), 1.0, size=(rows, cols)))]


def test_a_large_table_with_many_small_cells_is_protected_and_the_independent_attack_agrees():
    table = Table("t", random_counts(25, 25, 7))
    rule = Rule("threshold", 10)
    result = protect([table], rule)
    assert result.ok and len(result.primary) > 50
    assert not any(result.published[key] != SUPPRESSED for key in result.primary)
    widths = independent_attack([table], result, rule)
    assert len(widths) == len(result.primary) + len(result.secondary)
    assert min(widths.values()) >= 10
    assert len(result.secondary) < len(result.primary) / 2, "secondary suppression stays modest"


@pytest.mark.parametrize("index", [2, 3, 10])
def test_small_tables_hide_at_most_one_and_a_half_times_the_optimum(index):
    """The exact optimum (one mixed-integer programme) protects every small count; the heuristic's pattern hides
    no more than 1.5 times as many further cells (these tables are ones where the two differ in the bench)."""
    rows, cols = 4 + index % 4, 4 + index % 4 + index % 3
    table = Table("t", random_counts(rows, cols, 100 + index))
    rule = Rule("threshold", 10)
    optimum = optimal_suppression([table], rule, time_limit=60)
    assert optimum is not None and optimum.proven
    as_published = Protection({key: SUPPRESSED if key in optimum.hidden else value
                               for key, value in table.keys().items()}, set(), set(), {})
    primary = {key for key, value in table.keys().items() if rule.hides(value)}
    assert min(w for key, w in independent_attack([table], as_published, rule).items() if key in primary) >= 10
    result = protect([table], rule)
    assert result.ok and len(result.secondary) <= 1.5 * optimum.secondary


def test_the_old_one_cell_at_a_time_pattern_is_beaten_on_the_issues_table():
    """Issue 15: a 10x10 table with five small cells hid 25 further cells. Here: at most a dozen, all proven."""
    cells = random_counts(10, 10, 3)
    for i, j in ((0, 0), (2, 5), (4, 7), (6, 1), (9, 9)):
        cells[i][j] = 3 + i % 5
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            if 0 < value < 10 and (i, j) not in ((0, 0), (2, 5), (4, 7), (6, 1), (9, 9)):
                cells[i][j] = 10 + value
    table = Table("t", cells)
    result = protect([table], Rule("threshold", 10))
    assert len(result.primary) == 5 and result.ok
    assert len(result.secondary) <= 12
    assert min(independent_attack([table], result, Rule("threshold", 10)).values()) >= 10


def test_dominance_follows_acros_nk_and_p_ratio_rules():
    rule = Dominance()
    assert rule.failure([100, 1, 1, 1]) is not None, "two contributors make up 98%"
    assert rule.failure([50, 48, 1, 1, 1, 1, 1, 1]) is not None, "two contributors make up 94%"
    assert rule.failure([40] + [1] * 3).startswith("2 contributors")
    assert rule.failure([10, 10, 0.5]) is not None
    assert rule.failure([7]) == "fewer than two contributors"
    assert rule.failure([10] * 12) is None
    assert rule.failure([30, 25] + [5] * 6) is None, "top two 55 of 85: 65%, and the rest 30 against 30"
    assert Dominance(p=0.5).failure([30, 25] + [4] * 3) is not None, "the rest, 12, is under 50% of 30"
    assert rule.failure([-60, 2, 2, 2, 2]) is not None, "a large loss dominates as a large gain does"


def test_special_category_data_raises_the_default_threshold_and_changes_what_is_published():
    ordinary, special = Rule(), Rule(special_category=True)
    assert (ordinary.smallest_published, special.smallest_published) == (10, 20)
    assert Rule("ons-10-5", special_category=True).smallest_published == 20
    assert Rule("threshold", 12, special_category=True).smallest_published == 12, "a stated threshold stands"
    table = Table("t", [[15, 40, 60, 35]])
    assert protect([table], ordinary).cell(table, 0, 0) == 15
    shown = protect([table], special)
    assert shown.cell(table, 0, 0) == SUPPRESSED and shown.ok
    assert min(independent_attack([table], shown, special).values()) >= 20
