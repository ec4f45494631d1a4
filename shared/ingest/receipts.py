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

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


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
                  policy_version: str) -> dict[str, Any]:
    if rejection:
        status = "rejected"
    elif problems.counts:
        status = "accepted_with_errors"
    else:
        status = "accepted"
    return {
        "receipt_version": 1,
        "ingest_id": ingest_id,
        "partner": partner,
        "dataset": dataset,
        "file": file,
        "received_at": received_at,
        "status": status,
        "message": _message(status, counts),
        "rows": counts.as_dict(),
        "rejection": [p.as_dict() for p in rejection] if rejection else None,
        "errors": [p.as_dict() for p in problems.listed],
        "errors_listed": len(problems.listed),
        "errors_total": sum(problems.counts.values()),
        "error_summary": problems.summary(),
        "policy_version": policy_version,
    }


def _message(status: str, counts: RowCounts) -> str:
    if status == "rejected":
        return "The file was not accepted and nothing from it was kept. Fix what is listed and upload it again."
    kept = f"{counts.stored} of {counts.read} rows were accepted."
    if status == "accepted_with_errors":
        return f"{kept} Rows listed under errors were not kept: correct them and send those rows again."
    return kept


def receipt_path(partner: str, ingest_id: str) -> str:
    return f"{partner}/{ingest_id}.json"
