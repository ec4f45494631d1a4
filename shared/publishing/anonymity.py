"""The least lossy k-anonymous, l-diverse view of an extract's rows: a lattice search in the manner of ARX.

Each quasi-identifier has a hierarchy (shared/policy/generalise.py); a *node* of the lattice picks one level per
quasi-identifier. A node is acceptable when, after suppressing the rows of every group that is too small (fewer
than k distinct people: one person's six rows are one person) or not diverse enough (fewer than l distinct values
of a declared sensitive attribute), no more than the suppression budget of people lose rows.

Information loss is Iyengar's Loss Metric (LM): a generalised cell loses (leaves under its value - 1) /
(leaves in the column - 1), where leaves are the distinct values stored; a suppressed cell loses 1. The extract's
loss is the mean over every quasi-identifier cell of every row. It is chosen over generalisation height because it
follows the data: merging Manchester's nine districts into "M" costs a district column everything (all 9 leaves
under one value), while merging two rare ethnicity codes costs little; and it prices suppression and
generalisation on one scale, so the search can trade a few suppressed people against a whole column's detail.

The search: generalising only merges groups, so a node whose groups fail fails at every more specific node too
(monotonicity), and such nodes are pruned without counting. A node's loss is at least its loss before any
suppression, which the columns' value counts give without grouping, so nodes are visited in the order of that
bound and the search stops once no unvisited node can beat the best found.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.policy.generalise import Hierarchy, hierarchy

Node = tuple[int, ...]


@dataclass
class _Cell:
    """The rows sharing one combination of stored quasi-identifier values."""

    rows: int = 0
    people: set[Any] = field(default_factory=set)
    sensitive: list[set[Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation:
    """One node: its groups' outcome after suppression."""

    node: Node
    loss: float
    loss_by_column: dict[str, float]
    people_suppressed: int
    rows_suppressed: int
    failing: frozenset[tuple]
    """The generalised combinations whose rows are suppressed."""
    acceptable: bool


@dataclass(frozen=True)
class Result:
    rows: list[dict[str, Any]]
    """The rows kept, their quasi-identifiers generalised."""
    chosen: Evaluation
    levels: dict[str, str]
    search: dict[str, int]
    why_not_finer: list[dict[str, Any]]


class Unattainable(Exception):
    """Not even suppressing every quasi-identifier meets k and l within the budget."""

    def __init__(self, people: int, needed: int) -> None:
        super().__init__(f"{people} people, fewer than the {needed} needed")
        self.people, self.needed = people, needed


class Lattice:
    def __init__(self, rows: Sequence[dict[str, Any]], quasi: Sequence[str], sensitive: Sequence[str],
                 k: int, l: int, max_suppressed_percent: float, person: str) -> None:  # noqa: E741 - l as in l-diversity
        self.rows, self.quasi, self.sensitive, self.k, self.l = rows, tuple(quasi), tuple(sensitive), k, l
        self.person = person
        self.hierarchies: list[Hierarchy] = [hierarchy(q) for q in self.quasi]
        self.cells: dict[tuple, _Cell] = defaultdict(lambda: _Cell(sensitive=[set() for _ in self.sensitive]))
        for index, row in enumerate(rows):
            cell = self.cells[tuple(row.get(q) for q in self.quasi)]
            cell.rows += 1
            cell.people.add(row.get(person, index))
            for values, column in zip(cell.sensitive, self.sensitive, strict=True):
                if row.get(column) is not None:
                    values.add(row.get(column))
        self.people = len({row.get(person, index) for index, row in enumerate(rows)})
        self.budget = math.floor(self.people * max_suppressed_percent / 100)
        self.value_counts = [Counter(row.get(q) for row in rows) for q in self.quasi]
        self.cell_loss = [self._cell_losses(h, counts) for h, counts in zip(self.hierarchies, self.value_counts,
                                                                               strict=True)]

    @staticmethod
    def _cell_losses(h: Hierarchy, counts: Counter) -> list[dict[Any, float]]:
        """Per level, each stored value's LM loss: (leaves under its generalised value - 1) / (leaves - 1)."""
        leaves = [v for v in counts if v is not None]
        per_level = []
        for level in range(h.height + 1):
            under = Counter(h.apply(v, level) for v in leaves)
            losses = {}
            for value in leaves:
                shown = h.apply(value, level)
                losses[value] = 1.0 if shown is None else (under[shown] - 1) / max(len(leaves) - 1, 1)
            losses[None] = 0.0  # a missing value stays missing: nothing to lose
            per_level.append(losses)
        return per_level

    # Nodes --------------------------------------------------------------------------------------------------

    def nodes(self) -> list[Node]:
        return list(itertools.product(*(range(h.height + 1) for h in self.hierarchies)))

    def bound(self, node: Node) -> float:
        """The node's loss with nothing suppressed: a lower bound of its loss, from value counts alone."""
        if not self.rows or not self.quasi:
            return 0.0
        total = sum(sum(self.cell_loss[i][level][value] * n for value, n in self.value_counts[i].items())
                    for i, level in enumerate(node))
        return total / (len(self.rows) * len(self.quasi))

    def key(self, combination: tuple, node: Node) -> tuple:
        return tuple(h.apply(v, level) for h, v, level in zip(self.hierarchies, combination, node, strict=True))

    def evaluate(self, node: Node) -> Evaluation:
        keys = {combination: self.key(combination, node) for combination in self.cells}
        groups: dict[tuple, list[_Cell]] = defaultdict(list)
        for combination, cell in self.cells.items():
            groups[keys[combination]].append(cell)
        failing = frozenset(key for key, cells in groups.items() if not self._passes(cells))
        suppressed_people: set[Any] = set()
        suppressed_rows = 0
        lost = [0.0] * len(self.quasi)
        for combination, cell in self.cells.items():
            if keys[combination] in failing:
                suppressed_people |= cell.people
                suppressed_rows += cell.rows
                lost = [x + cell.rows for x in lost]
            else:
                lost = [x + cell.rows * self.cell_loss[i][node[i]][combination[i]] for i, x in enumerate(lost)]
        rows = max(len(self.rows), 1)
        by_column = {q: round(x / rows, 4) for q, x in zip(self.quasi, lost, strict=True)}
        loss = sum(lost) / (rows * max(len(self.quasi), 1))
        return Evaluation(node, loss, by_column, len(suppressed_people), suppressed_rows, failing,
                          len(suppressed_people) <= self.budget)

    def _passes(self, cells: list[_Cell]) -> bool:
        if len(set().union(*(c.people for c in cells))) < self.k:
            return False
        return all(len(set().union(*(c.sensitive[i] for c in cells))) >= self.l for i in range(len(self.sensitive)))

    # The search ---------------------------------------------------------------------------------------------

    def search(self) -> tuple[Evaluation, dict[str, int]]:
        nodes = sorted(self.nodes(), key=lambda n: (self.bound(n), sum(n), n))
        best: Evaluation | None = None
        failed: list[Node] = []
        checked = pruned = visited = 0
        for node in nodes:
            if best is not None and self.bound(node) >= best.loss:
                break  # every node left loses at least as much as the best found
            visited += 1
            if any(all(a <= b for a, b in zip(node, f, strict=True)) for f in failed):
                pruned += 1  # more specific than a node that failed: fails too
                continue
            checked += 1
            evaluation = self.evaluate(node)
            if not evaluation.acceptable:
                failed.append(node)
            elif best is None or evaluation.loss < best.loss:
                best = evaluation
        if best is None:
            raise Unattainable(self.people, self.k)
        return best, {"nodes": len(nodes), "checked": checked, "pruned_by_monotonicity": pruned,
                      "skipped_by_loss_bound": len(nodes) - visited}

    def why_not_finer(self, chosen: Evaluation) -> list[dict[str, Any]]:
        """For each generalised quasi-identifier, what each finer level would cost with the others as chosen: the
        figures behind the choice (people suppressed against the budget, or a greater loss)."""
        reasons = []
        for i, level in enumerate(chosen.node):
            for lower in range(level - 1, -1, -1):
                reasons.append(self._reason(chosen.node, i, lower))
        return reasons

    def _reason(self, node: Node, i: int, lower: int) -> dict[str, Any]:
        finer = self.evaluate((*node[:i], lower, *node[i + 1:]))
        return {
            "column": self.quasi[i], "level": self.hierarchies[i].levels[lower],
            "people_suppressed": finer.people_suppressed,
            "people_suppressed_percent": round(100 * finer.people_suppressed / max(self.people, 1), 1),
            "within_budget": finer.acceptable, "budget_people": self.budget,
            "information_loss": round(finer.loss, 4)}


def anonymise(rows: Sequence[dict[str, Any]], quasi: Sequence[str], k: int, *, sensitive: Sequence[str] = (),
              l: int = 1, max_suppressed_percent: float = 0.0, person: str) -> Result:  # noqa: E741
    """The rows generalised and suppressed at the least lossy acceptable node (see the module docstring)."""
    lattice = Lattice(rows, quasi, sensitive, k, l, max_suppressed_percent, person)
    chosen, search = lattice.search()
    kept = []
    for row in rows:
        key = lattice.key(tuple(row.get(q) for q in lattice.quasi), chosen.node)
        if key not in chosen.failing:
            kept.append({**row, **dict(zip(lattice.quasi, key, strict=True))})
    levels = {q: h.levels[n] for q, h, n in zip(lattice.quasi, lattice.hierarchies, chosen.node, strict=True)}
    return Result(kept, chosen, levels, search, lattice.why_not_finer(chosen))


@dataclass(frozen=True)
class Check:
    """What a published table achieves, counted from its own cells: the independent check of the search."""

    k: int
    l: int | None  # noqa: E741 - the l of l-diversity
    risk_max: float
    risk_mean: float
    people: int


def check(rows: Iterable[dict[str, Any]], quasi: Sequence[str], sensitive: Sequence[str], person: str) -> Check:
    """k (distinct people in the smallest group), distinct l per sensitive attribute (the least), and prosecutor
    re-identification risk: 1 / the size of a person's group, the largest over their rows; max and mean over
    people."""
    people: dict[tuple, set[Any]] = defaultdict(set)
    values: dict[tuple, list[set[Any]]] = defaultdict(lambda: [set() for _ in sensitive])
    groups_of: dict[Any, set[tuple]] = defaultdict(set)
    for row in rows:
        key = tuple(row.get(q) for q in quasi)
        people[key].add(row[person])
        groups_of[row[person]].add(key)
        for found, column in zip(values[key], sensitive, strict=True):
            if row.get(column) is not None:
                found.add(row.get(column))
    if not people:
        return Check(0, None, 0.0, 0.0, 0)
    risks = [max(1 / len(people[key]) for key in keys) for keys in groups_of.values()]
    diversity = min((len(v) for sets in values.values() for v in sets), default=None)
    return Check(min(len(p) for p in people.values()), diversity, max(risks), sum(risks) / len(risks),
                 len(groups_of))
