"""Pseudonymised research extracts, as agreed in the policy: one recipient, the agreed columns only, k-anonymous.

Each recipient gets its own pseudonyms, under the domain key `extract:<recipient>` (the brief's formula, with the
person's key in the platform's index as the value), so no two recipients, and no recipient and the platform, can
join their data. Quasi-identifiers are generalised one step at a time (the one with the most distinct values
first) until every combination is shared by at least k people (distinct people, not rows) or nothing more can be
generalised, and the rows still in smaller groups are then suppressed. The extract goes to exports/ with a short-
lived read link and an expiry; the retention run destroys it then and records the destruction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.identity.index import PersonIndex
from shared.identity.keys import KeySource
from shared.identity.pseudonymise import Pseudonymiser
from shared.platform.audit import AuditLog
from shared.platform.auth import Problem
from shared.platform.csvsafe import to_csv
from shared.platform.storage import AUDIT, EXPORTS, Storage
from shared.policy.loader import ExtractSpec, Policy
from shared.publishing import analysis

RECIPIENT_ID = "research_id"


def generalise(column: str, value: Any, level: int) -> Any:
    """One column's value at a generalisation level (0 = as stored); None once nothing is left to show."""
    if value is None or level == 0:
        return value
    text = str(value)
    if column.endswith(("_district", "_sector")):  # SW9 8 -> SW9 -> SW (postcode area)
        outward = text.split()[0]
        area = re.match(r"[A-Z]*", outward)  # always matches: `*` accepts the empty string
        steps = [outward, area.group(0) if area else ""]
        if column.endswith("_district"):
            steps = steps[1:]
        return steps[level - 1] if level <= len(steps) else None
    if column.endswith("_month") and len(text) == 7:  # 2021-06 -> 2021 -> 2020s
        return text[:4] if level == 1 else (f"{text[:3]}0s" if level == 2 else None)
    if column.endswith("_age_months") and isinstance(value, int):
        band = {1: 12, 2: 24, 3: 60}.get(level)
        return f"{value // band * band}-{value // band * band + band - 1}" if band else None
    if column == "ethnicity":  # DfE codes: WBRI -> W (White), etc.
        return text[0] if level == 1 else None
    return None  # anything else can only be suppressed


MAX_LEVEL = 4


def k_anonymise(rows: list[dict[str, Any]], quasi: tuple[str, ...], k: int,
                person: str = RECIPIENT_ID) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """Generalise, then suppress: returns the rows, the level of each quasi-identifier, rows suppressed.

    k counts distinct people (`person`), never rows: one person sent in six monthly files is one person, and a
    combination only they have is generalised or suppressed, not published because it has six rows."""
    levels = dict.fromkeys(quasi, 0)

    def view(row: dict[str, Any]) -> tuple:
        return tuple(generalise(q, row.get(q), levels[q]) for q in quasi)

    def people_per_class() -> dict[tuple, int]:
        people: dict[tuple, set[Any]] = defaultdict(set)
        for index, row in enumerate(rows):
            people[view(row)].add(row.get(person, index))
        return {combination: len(members) for combination, members in people.items()}

    while True:
        classes = people_per_class()
        if all(size >= k for size in classes.values()) or not quasi:
            break
        movable = [q for q in quasi if levels[q] < MAX_LEVEL]
        if not movable:
            break
        widest = max(movable, key=lambda q: (len({generalise(q, r.get(q), levels[q]) for r in rows}), q))
        levels[widest] += 1
    classes = people_per_class()
    kept = [{**row, **dict(zip(quasi, view(row), strict=True))} for row in rows if classes[view(row)] >= k]
    return kept, levels, len(rows) - len(kept)


class ExtractService:
    def __init__(self, policy: Policy, storage: Storage, keys: KeySource, index: PersonIndex,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy, self.storage, self.keys, self.index, self.clock = policy, storage, keys, index, clock
        self.audit = AuditLog(storage.table(AUDIT))

    def build(self, name: str, caller: str) -> dict[str, Any]:
        spec = self.policy.extracts.get(name)
        if spec is None:
            raise Problem(404, "Not Found", "No extract of that name is in the programme policy.")
        if spec.expires <= self.clock().date():
            raise Problem(409, "Conflict", "The agreement for this extract has expired: it may not be produced.")
        rows = self._rows(spec)
        kept, levels, suppressed = k_anonymise(rows, spec.quasi_identifiers, spec.k)
        header = [RECIPIENT_ID, *spec.columns]
        name_in_exports = f"extracts/{spec.name}/{self.clock().date().isoformat()}.csv"
        self.storage.platform_blob(EXPORTS, name_in_exports).upload_blob(
            to_csv(header, ([row.get(c) for c in header] for row in kept)).encode(), overwrite=True,
            metadata={"expires": spec.expires.isoformat(), "recipient": spec.recipient})
        summary = {"extract": spec.name, "recipient": spec.recipient, "rows": len(kept),
                   "rows_suppressed": suppressed, "k": spec.k, "generalisation": levels,
                   "expires": spec.expires.isoformat(), "file": f"{EXPORTS}/{name_in_exports}"}
        self.audit.append("extract.created", summary, actor=caller)
        return {**summary, "link": self.storage.platform_read_link(EXPORTS, name_in_exports),
                "link_expires_in_hours": 24}

    def _rows(self, spec: ExtractSpec) -> list[dict[str, Any]]:
        data = analysis.load(self.storage, self.index, spec.datasets, set(spec.columns))
        recipient = Pseudonymiser(self.keys.root_key().material, domain=f"extract:{spec.recipient}")
        return [{RECIPIENT_ID: recipient.pseudonym("subject", row["_person"]),
                 **{c: row.get(c) for c in spec.columns}} for row in data.rows]
