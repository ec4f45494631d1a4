"""The partner's receipt: what was accepted, and exactly what to fix. It names rows, columns and rules only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.policy.contracts import Problem

MAX_LISTED_PROBLEMS = 1000


@dataclass
class RowCounts:
    read: int = 0
    stored: int = 0
    invalid: int = 0
    no_consent: int = 0
    suppressed: int = 0
    replaced: int = 0
    """Copies of this upload's rows stored before (by earlier uploads, or earlier in this file) and now replaced."""
    superseded: int = 0
    """Rows of this upload not stored because a newer upload had already sent the same row."""

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


LEFT_OUT = {
    "no_consent": "left out: the agreement needs the person's consent and the row does not record it (Y)",
    "suppressed": "left out: the person has opted out (objected, withdrawn consent or asked for erasure); "
                  "do not send their rows again",
    "superseded": "not stored: a newer upload has already sent this row (the same row key)",
}
"""Why a row that had no error was not stored, as the receipt says it."""


@dataclass
class RowList:
    """Row numbers by reason (no consent, suppressed, ...): counted in full, the first thousand of each listed.
    Rows may arrive out of order (the columnar path hands some rows of a batch to the row path first), so each
    list is kept sorted and cut to its first thousand now and then, and at the end."""

    rows: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, row: int) -> None:
        self.extend(reason, [row])

    def extend(self, reason: str, rows: list[int]) -> None:
        listed = self.rows.setdefault(reason, [])
        listed.extend(rows)
        if len(listed) > 4 * MAX_LISTED_PROBLEMS:
            self.rows[reason] = sorted(listed)[:MAX_LISTED_PROBLEMS]

    def listed(self, reason: str) -> list[int]:
        return sorted(self.rows.get(reason, []))[:MAX_LISTED_PROBLEMS]


@dataclass
class ProblemLog:
    """Every row problem is counted by column and rule; the first thousand are listed by row."""

    listed: list[Problem] = field(default_factory=list)
    counts: Counter[tuple[str | None, str]] = field(default_factory=Counter)

    def add(self, problems: list[Problem]) -> None:
        for problem in problems:
            self.counts[(problem.column, problem.rule)] += 1
            if len(self.listed) < MAX_LISTED_PROBLEMS:
                self.listed.append(problem)

    def summary(self) -> list[dict[str, Any]]:
        return [{"column": column, "rule": rule, "rows": rows}
                for (column, rule), rows in sorted(self.counts.items(), key=lambda item: (-item[1], item[0][1]))]


def build_receipt(*, ingest_id: str, partner: str, dataset: str | None, file: str, received_at: str,
                  counts: RowCounts, problems: ProblemLog, rejection: list[Problem] | None,
                  policy_version: str, size: int | None = None, left_out: RowList | None = None,
                  replacing: list[int] | None = None) -> dict[str, Any]:
    """The receipt. `file` is the name as `names.shown_name` renders it, never the name as given; `left_out` lists
    rows with no error that were not stored, by reason; `replacing` the rows of this file that replaced a copy
    stored before."""
    if rejection:
        status = "rejected"
    elif problems.counts:
        status = "accepted_with_errors"
    else:
        status = "accepted"
    left_out = left_out or RowList()
    totals = {"no_consent": counts.no_consent, "suppressed": counts.suppressed, "superseded": counts.superseded}
    return {
        "receipt_version": 2,
        "ingest_id": ingest_id,
        "partner": partner,
        "dataset": dataset,
        "file": file,
        "size_bytes": size,
        "received_at": received_at,
        "status": status,
        "message": _message(status, counts),
        "rows": counts.as_dict(),
        "rejection": [p.as_dict() for p in rejection] if rejection else None,
        "errors": [p.as_dict() for p in problems.listed],
        "errors_listed": len(problems.listed),
        "errors_total": sum(problems.counts.values()),
        "error_summary": problems.summary(),
        "left_out": {reason: {"rows": left_out.listed(reason), "total": totals[reason], "message": message}
                     for reason, message in LEFT_OUT.items()},
        "replaced": {"rows": sorted(replacing or [])[:MAX_LISTED_PROBLEMS], "total": counts.replaced,
                     "message": "these rows replaced the copy of the same row (the same row key) stored before"},
        "policy_version": policy_version,
    }


def _message(status: str, counts: RowCounts) -> str:
    if status == "rejected":
        return "The file was not accepted and nothing from it was kept. Fix what is listed and upload it again."
    parts = [f"{counts.stored} of {counts.read} rows were accepted."]
    if status == "accepted_with_errors":
        parts.append("Rows listed under errors were not kept: correct them and send those rows again.")
    left = [f"{n} without consent" for n in [counts.no_consent] if n] + [
        f"{n} of people who opted out" for n in [counts.suppressed] if n] + [
        f"{n} already sent again in a newer upload" for n in [counts.superseded] if n]
    if left:
        parts.append(f"Rows left out, listed under left_out: {', '.join(left)}.")
    if counts.replaced:
        parts.append(f"{counts.replaced} rows stored before were replaced by this file's copies.")
    return " ".join(parts)


def receipt_path(partner: str, ingest_id: str) -> str:
    return f"{partner}/{ingest_id}.json"
