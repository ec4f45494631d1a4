"""Disclosure control for anything published: primary suppression, secondary suppression, and an attack that
proves the result.

Tables are counts with their margins (one-way: cells and a total; two-way: cells, row and column totals and a
grand total). Tables may share margins (two tables by area share the area totals); they are then protected
together. Primary suppression hides small counts by a rule. Secondary suppression then protects each primary
cell once: it must be possible for two tables an attacker cannot tell apart from what is published to differ on
it by at least the rule's threshold. In a single two-way table the cells already hidden are asked first (a
maximum flow through them gives the cell's exact range), then the cheapest rectangle through the cell is hidden
(the hypercube method of tau-Argus and sdcTable, in two dimensions); otherwise, and for one-way or linked tables,
one small linear programme finds the cheapest cells to hide (the LP heuristic of Kelly, Golden and Assad). Each
pair of tables found is kept as a *witness*: two tables consistent with everything published, so the cells they
move provably span that much. The pattern is then tidied: a further cell is published again if the attack still
passes without it.

Before anything is published it is attacked: for each hidden cell, the smallest and largest values consistent
with everything published (published counts, exact or within their rounding, and every margin relation). Where
witnesses that satisfy the attack's own constraints already span the threshold the cell is proven safe;
otherwise two linear programmes (scipy's HiGHS) find its exact smallest and largest value. A hidden cell whose
range is narrower than the threshold is protected again and the table attacked again; a table set that cannot
be protected is blocked with a reason, never published. `optimal_suppression` solves the whole problem exactly
as one mixed-integer programme (the Fischetti-Salazar model) for small tables, to measure the heuristic against.

Markers follow the DfE's statistical symbols: `c` for a suppressed (confidential) value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from shared.policy.disclosure_rules import Rule

if TYPE_CHECKING:
    import numpy as np

SUPPRESSED = "c"
TOLERANCE = 1e-6
HIDDEN_COST = 1e-3
"""What moving an already hidden cell costs a protecting programme: almost nothing, so protection reuses them."""
TIDY_LIMIT = 150
"""Tables of up to this many quantities (a 10x10 table has 121 with its totals) are tidied after protection."""
MARGIN_COST = 1.5
STARTS = ((True, True), (False, True), (True, False), (False, False))
"""(largest primary first, rectangles where they serve) for each start; large tables take the first only."""
"""What hiding a total costs against an inner cell's 1: a hidden total hides more of the table."""

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
    """For each hidden quantity, the smallest and largest values the attack showed consistent with what is
    published: the exact extremes where it solved the cell's linear programmes, otherwise two witnessed values
    at least the threshold apart (the true range is at least as wide)."""
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
    """The linear relations between every published quantity of a set of tables, as a sparse matrix whose rows
    are the sums (parts minus whole = 0) and whose columns are the quantities."""

    def __init__(self, tables: Sequence[Table]) -> None:
        import numpy as np  # imported here: only protecting a table needs the numerical stack
        from scipy.sparse import csr_matrix

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
        rows, cols, signs = [], [], []
        for r, (parts, whole) in enumerate(self.relations):
            for key, sign in [*((part, 1.0) for part in parts), (whole, -1.0)]:
                rows.append(r)
                cols.append(self.index[key])
                signs.append(sign)
        self.matrix = csr_matrix((signs, (rows, cols)), shape=(len(self.relations), len(self.keys)))
        self.true = np.array([float(self.values[key]) for key in self.keys])
        self.margin = np.array([_is_margin(key) for key in self.keys])
        self.ceiling = float(self.true.max(initial=0.0)) + 1.0
        """No quantity of a table whose grand total is published can exceed its largest quantity."""
        self.grid = _grid(tables[0], self.index) if len(tables) == 1 and not tables[0].one_way else None
        """For one two-way table: the quantity at each place of the table with its totals as a last row and
        column, where suppression patterns are rectangles."""
        self.network = _Network(self) if self.grid is not None else None

    def mask(self, keys: set[Key]) -> np.ndarray:
        import numpy as np

        flags = np.zeros(len(self.keys), dtype=bool)
        flags[[self.index[key] for key in keys]] = True
        return flags


def _grid(table: Table, index: dict[Key, int]) -> np.ndarray:
    import numpy as np

    rows, cols = table.row_margin or table.name, table.col_margin or table.name
    total = ("total", table.row_margin or table.col_margin or table.name)
    grid = [[index[(table.name, i, j)] for j in range(len(row))] + [index[("row", rows, i)]]
            for i, row in enumerate(table.cells)]
    grid.append([index[("col", cols, j)] for j in range(len(table.cells[0]))] + [index[total]])
    return np.array(grid)


class _Network:
    """One two-way table as a flow network, for exact ranges without a linear programme (Castro's network view
    of secondary suppression). With its totals as a last row and column and the sign of each single total
    flipped, every row and column of the table sums to zero, so what an attacker cannot rule out is a
    circulation on the bipartite graph of rows and columns: raising place (r, c) is an arc row r -> column c,
    lowering it an arc back, each with the room that place has (a count can fall to 0; a flipped total can rise
    by at most its value). How far a hidden place can rise is the maximum flow back from its column to its
    row through the other hidden places, and how far it can fall the flow the other way; the flow itself is a
    table consistent with what is published, so it is kept as a witness. Exact for counts published exactly."""

    def __init__(self, model: _Model) -> None:
        import numpy as np

        grid = model.grid
        assert grid is not None
        rows, cols = grid.shape
        self.places = grid.ravel()
        self.row = np.repeat(np.arange(rows), cols)
        self.col = rows + np.tile(np.arange(cols), rows)
        self.flipped = (self.row == rows - 1) ^ (self.col == rows + cols - 1)
        self.nodes = rows + cols
        room = float(2 * model.ceiling + 1)
        value = model.true[self.places]
        self.rise = np.where(self.flipped, value, room).astype(np.int64)
        self.fall = np.where(self.flipped, room, value).astype(np.int64)
        self.where = {int(n): k for k, n in enumerate(self.places)}
        self.place_of_arc = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(self.row, self.col, strict=True))}
        self.true = model.true

    def prove(self, n: int, hidden: np.ndarray, witnesses: _Witnesses) -> tuple[float, float]:
        """Quantity n's exact smallest and largest value given the hidden quantities; both tables kept."""
        import numpy as np
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import maximum_flow

        k = self.where[n]
        others = hidden[self.places].copy()
        others[k] = False
        heads = np.concatenate([self.row[others], self.col[others]])
        tails = np.concatenate([self.col[others], self.row[others]])
        room = np.concatenate([self.rise[others], self.fall[others]]).astype(np.int32)
        graph = csr_matrix((room, (heads, tails)), shape=(self.nodes, self.nodes))
        sign = -1.0 if self.flipped[k] else 1.0
        moves = []
        for source, sink, limit, direction in ((self.col[k], self.row[k], self.rise[k], 1.0),
                                               (self.row[k], self.col[k], self.fall[k], -1.0)):
            flow = maximum_flow(graph, int(source), int(sink))
            amount = float(min(flow.flow_value, limit))
            scale = amount / flow.flow_value if flow.flow_value else 0.0
            moved = flow.flow.tocoo()
            change = np.zeros(len(self.places))
            for head, tail, units in zip(moved.row.tolist(), moved.col.tolist(), moved.data.tolist(), strict=True):
                if units > 0:  # along an arc row -> column the place rises, back along one it falls
                    if (head, tail) in self.place_of_arc:
                        change[self.place_of_arc[(head, tail)]] += units * scale
                    else:
                        change[self.place_of_arc[(tail, head)]] -= units * scale
            change[k] = direction * amount
            table = self.true.copy()
            table[self.places] += change * np.where(self.flipped, -1.0, 1.0)
            witnesses.add(table)
            moves.append(amount)
        rise, fall = moves
        return ((self.true[n] - fall, self.true[n] + rise) if sign > 0 else
                (self.true[n] - rise, self.true[n] + fall))


class _Witnesses:
    """The smallest and largest value of each quantity over tables known to be consistent with what is
    published. Hiding more cells only widens what is consistent, so a witness stays valid as protection grows."""

    def __init__(self, true: np.ndarray, tables: Sequence[np.ndarray] = ()) -> None:
        self.true = true
        self.low = true.copy()
        self.high = true.copy()
        self.tables: list[np.ndarray] = []
        for table in tables:
            self.add(table)

    def add(self, table: np.ndarray) -> None:
        import numpy as np

        np.minimum(self.low, table, out=self.low)
        np.maximum(self.high, table, out=self.high)
        self.tables.append(table)

    def without(self, n: int) -> _Witnesses:
        """The witnesses that stay valid if quantity n is published after all: those that do not move it."""
        return _Witnesses(self.true, [table for table in self.tables if abs(table[n] - self.true[n]) <= TOLERANCE])

    def width(self, n: int) -> float:
        return float(self.high[n] - self.low[n])


def protect(tables: Sequence[Table], rule: Rule) -> Protection:
    """Suppress, protect every hidden cell, attack, and repair until the attack finds nothing, or block.

    A small table (up to TIDY_LIMIT quantities) is protected from several starts (the largest or the smallest
    primary cell first, rectangles or linear programmes), each tidied, and the cheapest pattern kept: the order in
    which cells are protected decides what one protection can reuse from another."""
    model = _Model(tables)
    values = model.values
    published = {key: rule.publish(value) for key, value in values.items()}
    primary = {key for key, value in values.items() if rule.hides(value)}
    totals = [value for key, value in values.items() if key[0] == "total"]
    if any(0 < total < rule.smallest_published for total in totals):
        return _blocked(published, primary, "the table counts fewer people than the rule allows to publish at all")
    small = len(model.keys) <= TIDY_LIMIT
    tidy = small or (model.network is not None and not rule.rounds)
    best: tuple[float, np.ndarray, dict[Key, tuple[float, float]]] | None = None
    starts = [start for start in STARTS if model.grid is not None or not start[1]]  # rectangles need a grid
    for largest_first, rectangles in starts if small else starts[:1]:
        found = _suppress(model, published, primary, rule, largest_first, rectangles, tidy)
        if found is not None and (best is None or found[0] < best[0] - TOLERANCE):
            best = found
    if best is None:
        return _blocked(published, primary, "no further cells can be hidden to protect the small counts")
    hidden_keys = {key for key, flag in zip(model.keys, best[1], strict=True) if flag}
    return Protection(_render(published, hidden_keys), primary, hidden_keys - primary, best[2])


def _suppress(model: _Model, published: dict[Key, int], primary: set[Key], rule: Rule, largest_first: bool,
              rectangles: bool, tidy: bool) -> tuple[float, np.ndarray, dict[Key, tuple[float, float]]] | None:
    """One start: protect each primary cell, attack, protect what the attack finds too narrow, and repeat; then
    tidy. The pattern's cost (cells, totals costing more), the hidden quantities and the attack's ranges; None if
    some cell cannot be protected."""
    import numpy as np

    hidden = model.mask(primary)
    witnesses = _Witnesses(model.true)
    need = float(rule.smallest_published)
    sign = -1.0 if largest_first else 1.0
    for n in sorted((model.index[key] for key in primary), key=lambda n: (sign * model.true[n], n)):
        if not ((rectangles and _rectangle(model, n, hidden, witnesses, need, not rule.rounds))
                or _shield(model, n, hidden, witnesses, need)):
            return None
    for _ in range(len(model.keys) + 1):
        ranges = attack(model, published, hidden, rule, witnesses)
        failing = [model.index[key] for key, (lo, hi) in ranges.items() if hi - lo < need - TOLERANCE]
        if not failing:
            if tidy:
                hidden, witnesses = _tidy(model, published, primary, hidden, witnesses, rule)
                ranges = attack(model, published, hidden, rule, witnesses)
            cost = float(np.where(model.margin, MARGIN_COST, 1.0)[hidden].sum())
            return cost, hidden, ranges
        for n in failing:
            if not _shield(model, n, hidden, witnesses, need):
                return None
    return None


def _rectangle(model: _Model, n: int, hidden: np.ndarray, witnesses: _Witnesses, need: float,
               exact: bool) -> bool:
    """Protect quantity n of a two-way table with the cheapest rectangle through it (the hypercube method of
    tau-Argus and sdcTable, in two dimensions), the table's totals counting as a last row and column.

    Moving n by d moves the corner in its row and the corner in its column by -d and the far corner by +d (a
    total moves with its parts, so each total among the corners flips the sign). Going down, n and the corners
    moving with it can give up at most their values; going up, the corners moving against it can. A rectangle
    protects n if those two amounts add up to `need`; of those, the one hiding fewest new cells (totals costing
    more), then the least of the table, is hidden. False if the table is not one two-way table or no rectangle
    protects n."""
    if witnesses.width(n) >= need - TOLERANCE:
        return True
    if model.grid is None:
        return False
    if model.network is not None and exact:
        low_value, high_value = model.network.prove(n, hidden, witnesses)
        if high_value - low_value >= need - TOLERANCE:
            return True
    import numpy as np

    grid = model.grid
    (i,), (j,) = np.nonzero(grid == n)
    last_row, last_col = grid.shape[0] - 1, grid.shape[1] - 1
    row_sign = np.where(np.arange(grid.shape[0]) == last_row, -1.0, 1.0)
    col_sign = np.where(np.arange(grid.shape[1]) == last_col, -1.0, 1.0)
    own = row_sign[i] * col_sign[j]
    # sign of each corner relative to n: (i, l) -1, (k, j) -1, (k, l) +1, each flipped once per total it is
    along_row = -row_sign[i] * col_sign * own          # corner (i, l) for every l
    along_col = -row_sign * col_sign[j] * own          # corner (k, j) for every k
    far = np.outer(row_sign, col_sign) * own           # corner (k, l)
    value = model.true
    row_value, col_value, far_value = value[grid[i, :]], value[grid[:, j]], value[grid]
    big = np.inf
    down = np.full(grid.shape, value[n])
    up = np.full(grid.shape, big)
    for sign, amount in ((along_row[None, :], row_value[None, :]), (along_col[:, None], col_value[:, None]),
                         (far, far_value)):
        down = np.where(sign > 0, np.minimum(down, amount), down)
        up = np.where(sign < 0, np.minimum(up, amount), up)
    cost = np.where(hidden, 0.0, np.where(model.margin, MARGIN_COST, 1.0))
    price = cost[grid[i, :]][None, :] + cost[grid[:, j]][:, None] + cost[grid]
    lost = (np.where(hidden, 0.0, value)[grid[i, :]][None, :] + np.where(hidden, 0.0, value)[grid[:, j]][:, None]
            + np.where(hidden, 0.0, value)[grid])
    usable = down + up >= need - TOLERANCE
    usable[i, :] = False
    usable[:, j] = False
    if not usable.any():
        return False
    score = np.where(usable, price * (1.0 + value.sum()) + lost, np.inf)
    k, m = np.unravel_index(int(np.argmin(score)), score.shape)
    corners = [grid[i, j], grid[i, m], grid[k, j], grid[k, m]]
    signs = np.array([1.0, along_row[m], along_col[k], far[k, m]])
    hidden[corners] = True
    for move in (min(float(up[k, m]), model.ceiling), -float(down[k, m])):
        table = value.copy()
        table[corners] += signs * move
        witnesses.add(table)
    return True


def _tidy(model: _Model, published: dict[Key, int], primary: set[Key], hidden: np.ndarray,
          witnesses: _Witnesses, rule: Rule) -> tuple[np.ndarray, _Witnesses]:
    """Publish again each secondary cell the attack shows is not needed, costliest and largest first: one
    protection at a time cannot see that a later one made an earlier cell redundant. Each trial is a full
    attack, so this runs on small tables only (TIDY_LIMIT quantities)."""
    import numpy as np

    need = float(rule.smallest_published)
    is_primary = model.mask(primary)
    order = sorted((int(n) for n in np.flatnonzero(hidden & ~is_primary)),
                   key=lambda n: (-(MARGIN_COST if model.margin[n] else 1.0), -model.true[n], n))
    for n in order:
        trial = hidden.copy()
        trial[n] = False
        kept = witnesses.without(n)
        known = len(kept.tables)
        ranges = attack(model, published, trial, rule, kept, first_failure=True)
        if all(hi - lo >= need - TOLERANCE for lo, hi in ranges.values()):
            hidden, witnesses = trial, kept
        else:  # what the trial's attack found is consistent with the larger pattern too
            for table in kept.tables[known:]:
                witnesses.add(table)
    return hidden, witnesses


def _shield(model: _Model, n: int, hidden: np.ndarray, witnesses: _Witnesses, need: float) -> bool:
    """Hide what quantity n needs so that two tables consistent with what is published differ on it by `need`.

    One linear programme over two deviation vectors u and l from the true table (u and l each keep every sum,
    keep every quantity non-negative, and u[n] - l[n] >= need), paying per unit of deviation: almost nothing on
    hidden quantities, 1 on an inner cell, more on a total. The quantities either deviation moves are hidden; the
    two tables true+u and true+l are kept as witnesses. False if no such pair exists (nothing can protect n)."""
    if witnesses.width(n) >= need - TOLERANCE:
        return True
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import bmat, csr_matrix, identity, vstack

    size = len(model.keys)
    cost = np.where(hidden, HIDDEN_COST, np.where(model.margin, MARGIN_COST, 1.0))
    # Variables: u+, u-, l+, l-, s (each one per quantity); u = u+ - u-, l = l+ - l-, and s bounds every part of
    # a quantity's movement, so that moving a cell in both tables costs what moving it in one does.
    zeros = np.zeros(size)
    objective = np.concatenate([zeros, zeros, zeros, zeros, cost])
    a = model.matrix
    equalities = bmat([[a, -a, None, None, csr_matrix(a.shape)], [None, None, a, -a, None]], format="csr")
    one = identity(size, format="csr")
    parts = bmat([[one, None, None, None, -one], [None, one, None, None, -one], [None, None, one, None, -one],
                  [None, None, None, one, -one]], format="csr")
    width = np.zeros(5 * size)
    width[[n, size + n, 2 * size + n, 3 * size + n]] = [-1.0, 1.0, 1.0, -1.0]
    up = np.full(size, model.ceiling)
    down = model.true
    bounds = np.stack([np.zeros(5 * size), np.concatenate([up, down, up, down, up])], axis=1)
    result = linprog(objective, A_ub=vstack([csr_matrix(width), parts], format="csr"),
                     b_ub=np.concatenate([[-need], np.zeros(4 * size)]), A_eq=equalities,
                     b_eq=np.zeros(equalities.shape[0]), bounds=bounds, method="highs")
    if result.status != 0:
        return False
    x = result.x
    upper, lower = x[:size] - x[size:2 * size], x[2 * size:3 * size] - x[3 * size:4 * size]
    hidden |= (np.abs(upper) > TOLERANCE) | (np.abs(lower) > TOLERANCE)
    witnesses.add(model.true + upper)
    witnesses.add(model.true + lower)
    return True


def attack(model: _Model, published: dict[Key, int], hidden: np.ndarray, rule: Rule,
           witnesses: _Witnesses | None = None, first_failure: bool = False) -> dict[Key, tuple[float, float]]:
    """For each hidden quantity, its smallest and largest value consistent with everything published.

    Two tables that satisfy this programme's constraints and differ on a cell by the threshold already prove
    that cell safe. In one two-way table published exactly, a cell not yet proven gets its exact range from two
    maximum flows (whose flows are such tables); every other cell, and any cell the flows find too narrow, gets
    two linear programmes for its exact extremes, and each solution is again such a table, so later cells are
    often proven by earlier ones. With `first_failure`, it stops at the first cell whose range is too narrow
    (for trials that only need to know whether a pattern holds; there an exact flow needs no programme)."""
    import numpy as np
    from scipy.optimize import linprog

    need = float(rule.smallest_published)
    bounds: list[tuple[float, float | None]] = [
        (0.0, None) if flag else rule.bounds(published[key]) for key, flag in zip(model.keys, hidden, strict=True)]
    witnesses = _checked(model, witnesses or _Witnesses(model.true), bounds)
    zero = np.zeros(len(model.relations))
    ranges: dict[Key, tuple[float, float]] = {}
    for n in map(int, np.flatnonzero(hidden)):
        if witnesses.width(n) >= need - TOLERANCE:
            ranges[model.keys[n]] = (float(witnesses.low[n]), float(witnesses.high[n]))
            continue
        if model.network is not None and not rule.rounds:
            low_value, high_value = model.network.prove(n, hidden, witnesses)
            if high_value - low_value >= need - TOLERANCE or first_failure:
                ranges[model.keys[n]] = (low_value, high_value)
                if first_failure and high_value - low_value < need - TOLERANCE:
                    break  # the flow is exact: a trial needs no programme to know it fails
                continue
        objective = np.zeros(len(model.keys))
        objective[n] = 1.0
        low = linprog(objective, A_eq=model.matrix, b_eq=zero, bounds=bounds, method="highs")
        high = linprog(-objective, A_eq=model.matrix, b_eq=zero, bounds=bounds, method="highs")
        for solution in (low, high):
            if solution.status == 0:
                witnesses.add(solution.x)
        top = math.inf if high.status == 3 else -high.fun
        ranges[model.keys[n]] = (low.fun if low.status == 0 else 0.0, top)
        if first_failure and top - ranges[model.keys[n]][0] < need - TOLERANCE:
            break
    return ranges


def _checked(model: _Model, witnesses: _Witnesses, bounds: list[tuple[float, float | None]]) -> _Witnesses:
    """The witnesses that satisfy the attack's own programme: every sum holds, hidden quantities are not
    negative, and published ones lie within what is published. Nothing is taken on trust from protection."""
    import numpy as np

    if not witnesses.tables:
        return witnesses
    tables = np.array(witnesses.tables)
    low = np.array([lo for lo, _ in bounds])
    high = np.array([np.inf if hi is None else hi for _, hi in bounds])
    sums = np.abs(model.matrix @ tables.T).max(axis=0) <= TOLERANCE * (1.0 + model.ceiling)
    inside = ((tables >= low - TOLERANCE) & (tables <= high + TOLERANCE)).all(axis=1)
    checked = _Witnesses(model.true)
    for table in tables[sums & inside]:
        checked.add(table)
    witnesses.tables, witnesses.low, witnesses.high = checked.tables, checked.low, checked.high
    return witnesses


def _is_margin(key: Key) -> bool:
    """Inner cells are keyed (table, row, column); totals ("row" | "col" | "total", margin name, ...)."""
    return isinstance(key, tuple) and isinstance(key[1], str)


def _render(published: dict[Key, int], hidden: set[Key]) -> dict[Key, int | str]:
    return {key: SUPPRESSED if key in hidden else value for key, value in published.items()}


def _blocked(published: dict[Key, int], primary: set[Key], reason: str) -> Protection:
    return Protection({key: SUPPRESSED for key in published}, primary, set(), {}, blocked=reason)


# The exact optimum, to measure the heuristic against ---------------------------------------------------------

@dataclass
class Optimum:
    hidden: set[Key]
    """The quantities hidden, primary and secondary."""
    secondary: int
    proven: bool
    """True if the solver proved the pattern optimal within its time limit; False if it stopped at the limit
    with the best pattern found (then not necessarily the smallest)."""


def optimal_suppression(tables: Sequence[Table], rule: Rule, time_limit: float = 60.0) -> Optimum | None:
    """The cheapest set of cells to hide so that every primary cell's range is at least the threshold wide, as
    one mixed-integer programme (the Fischetti-Salazar model, in its compact form), solved by HiGHS.

    For each primary cell p, two deviation vectors u^p and l^p from the true table keep every sum and every
    quantity non-negative, may move a quantity only if it is hidden (x = 1), and u^p[p] - l^p[p] >= threshold.
    Costs are those `protect` uses (1 an inner cell, more a total). The variables grow with the primary cells
    times the table, so this is for small tables; None if no pattern was found within the time limit."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, diags, hstack, vstack
    from scipy.sparse import identity as eye

    model = _Model(tables)
    primary = [n for n, key in enumerate(model.keys) if rule.hides(model.values[key])]
    size, need = len(model.keys), float(rule.smallest_published)
    rows: list[Any] = []
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    width = 2 * size * len(primary)  # the deviation vectors, then the x's
    identity = eye(size, format="csr")
    for k, p in enumerate(primary):
        for side in (0, 1):
            start = (2 * k + side) * size
            rows.append(_place(model.matrix, start, width + size))
            lower.append(np.zeros(model.matrix.shape[0]))
            upper.append(np.zeros(model.matrix.shape[0]))
            # -true*x <= dev  and  dev <= ceiling*x  (a quantity that is not hidden cannot move)
            rows.append(hstack([_place(identity, start, width), diags(model.true, format="csr")], format="csr"))
            lower.append(np.zeros(size))
            upper.append(np.full(size, np.inf))
            rows.append(hstack([_place(identity, start, width), diags(np.full(size, -model.ceiling), format="csr")],
                               format="csr"))
            lower.append(np.full(size, -np.inf))
            upper.append(np.zeros(size))
        spread = np.zeros(width + size)
        spread[2 * k * size + p], spread[(2 * k + 1) * size + p] = 1.0, -1.0
        rows.append(csr_matrix(spread))
        lower.append(np.array([need]))
        upper.append(np.array([np.inf]))
    cost = np.concatenate([np.zeros(width), np.where(model.margin, MARGIN_COST, 1.0)])
    low = np.concatenate([np.concatenate([-model.true] * 2 * len(primary)) if primary else np.zeros(0),
                          model.mask({model.keys[p] for p in primary}).astype(float)])
    high = np.concatenate([np.full(width, model.ceiling), np.ones(size)])
    integrality = np.concatenate([np.zeros(width), np.ones(size)])
    constraints = [LinearConstraint(vstack(rows, format="csr"), np.concatenate(lower), np.concatenate(upper))] \
        if rows else []
    result = milp(cost, constraints=constraints, integrality=integrality, bounds=Bounds(low, high),
                  options={"time_limit": time_limit})
    if result.x is None:
        return None
    hidden = {model.keys[n] for n in np.flatnonzero(result.x[width:] > 0.5)}
    return Optimum(hidden, len(hidden) - len(primary), proven=result.status == 0)


def _place(block: Any, start: int, width: int) -> Any:
    """`block` as columns start.. of a matrix `width` columns wide."""
    from scipy.sparse import csr_matrix, hstack

    parts = [csr_matrix((block.shape[0], start)), block, csr_matrix((block.shape[0], width - start - block.shape[1]))]
    return hstack([part for part in parts if part.shape[1]], format="csr")
