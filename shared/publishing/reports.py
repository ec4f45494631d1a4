"""Anonymised reports defined in the programme policy, published only through disclosure control.

Each run writes reports/<name>/<date>/: report.csv (spreadsheet-safe, DfE markers), report.html (the table and a
chart, the PNG embedded) and metadata.json (rule, cells hidden, the attack's result, policy and data versions);
and reports/<name>/latest.json. A table the attack can break, or that cannot be protected, is blocked: its
metadata records why, and nothing else is written.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.identity.index import PersonIndex
from shared.platform.audit import AuditLog
from shared.platform.auth import Problem
from shared.platform.csvsafe import to_csv
from shared.platform.paging import PageRequest, page_body, sorted_page
from shared.platform.storage import AUDIT, REPORTS, Storage
from shared.policy.loader import Policy, ReportSpec
from shared.publishing import analysis
from shared.publishing.disclosure import SUPPRESSED, Protection, Table, protect

NOT_RECORDED = "not recorded"
Measure = dict[tuple[int, int], float | str]
"""A sum or mean per cell, or the marker where its contributors dominate it (the rule's n,k or p% test)."""


class ReportService:
    def __init__(self, policy: Policy, storage: Storage, index: PersonIndex,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy, self.storage, self.index, self.clock = policy, storage, index, clock
        self.audit = AuditLog(storage.table(AUDIT))

    def spec(self, name: str) -> ReportSpec:
        spec = self.policy.reports.get(name)
        if spec is None:
            raise Problem(404, "Not Found", "No report of that name is in the programme policy.")
        return spec

    def run(self, name: str) -> dict[str, Any]:
        spec = self.spec(name)
        today = self.clock().date()
        table, measure, data_version = self._table(spec)
        result = protect([table], spec.rule)
        metadata = self._metadata(spec, table, result, data_version, today)
        metadata["cells_hidden"]["dominance"] = sum(value == SUPPRESSED for value in (measure or {}).values())
        folder = f"{spec.name}/{today.isoformat()}"
        if result.ok:
            csv_text = self._csv(spec, table, result, measure)
            self._put(f"{folder}/report.csv", csv_text.encode(), "text/csv")
            self._put(f"{folder}/report.html", self._html(spec, table, result, measure, metadata).encode(),
                      "text/html")
        self._put(f"{folder}/metadata.json", json.dumps(metadata, indent=2).encode(), "application/json")
        self._put(f"{spec.name}/latest.json", json.dumps(metadata, indent=2).encode(), "application/json")
        self.audit.append("report.published" if result.ok else "report.blocked",
                          {"report": spec.name, "date": today.isoformat(), "hidden": metadata["cells_hidden"],
                           "data_version": data_version})
        return metadata

    def latest(self, name: str) -> dict[str, Any]:
        spec = self.spec(name)
        try:
            metadata = json.loads(self.storage.platform_blob(REPORTS, f"{spec.name}/latest.json")
                                  .download_blob().readall())
        except ResourceNotFoundError:
            raise Problem(404, "Not Found", "This report has not been run yet.") from None
        if metadata["status"] == "published":
            folder = f"{spec.name}/{metadata['date']}"
            metadata["links"] = {kind: self.storage.platform_read_link(REPORTS, f"{folder}/report.{kind}", hours=1)
                                 for kind in ("csv", "html")}
        return metadata

    def published(self, page: PageRequest) -> dict[str, Any]:
        """Every run of every report of the policy, newest first, a page at a time: the report, its audience,
        the date and whether it was published or blocked (a blocked run wrote its metadata and nothing else)."""
        names = {blob.name for blob in self.storage.platform_container(REPORTS).list_blobs()}
        runs = sorted(((parts[0], parts[1]) for name in names if len(parts := name.split("/")) == 3
                       and parts[0] in self.policy.reports and parts[2] == "metadata.json"),
                      key=_newest_first_key, reverse=True)
        shown, following = sorted_page(runs, _newest_first_key, page, descending=True)
        return page_body([{"report": report, "audience": self.policy.reports[report].audience, "date": day,
                           "status": "published" if f"{report}/{day}/report.csv" in names else "blocked"}
                          for report, day in shown], following)

    def refresh_all(self) -> list[dict[str, Any]]:
        return [self.run(name) for name in self.policy.reports]

    # Building the table ------------------------------------------------------------------------------------

    def _table(self, spec: ReportSpec) -> tuple[Table, Measure | None, str]:
        if spec.kind == "impact":
            return self._impact_table(spec)
        columns = set(spec.dimensions) | set(spec.filters) | ({spec.measure_column} if spec.measure_column else set())
        data = analysis.load(self.storage, self.index, spec.datasets, columns)
        rows = [r for r in data.rows if all(_label(r.get(c)) in allowed for c, allowed in spec.filters.items())]
        first = sorted({_label(r.get(spec.dimensions[0])) for r in rows})
        second = sorted({_label(r.get(spec.dimensions[1])) for r in rows}) if len(spec.dimensions) == 2 else [""]
        groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            i = second.index(_label(row.get(spec.dimensions[1]))) if len(spec.dimensions) == 2 else 0
            groups[(first.index(_label(row.get(spec.dimensions[0]))), i)].append(row)
        counts = [[_count(spec.measure, groups[(j, i)]) for j in range(len(first))] for i in range(len(second))]
        measure = None
        if spec.measure in ("sum", "mean"):
            measure_column = spec.measure_column
            if measure_column is None:
                raise ValueError(f"report {spec.name!r}: a {spec.measure} needs the column it measures")
            measure = {key: SUPPRESSED if spec.rule.dominance.failure(_per_person(group, measure_column))
                       else _aggregate(spec.measure, [r.get(measure_column) for r in group])
                       for key, group in groups.items()}
        if len(spec.dimensions) == 2:  # rows of the table are the first dimension
            counts = [list(column) for column in zip(*counts, strict=True)]
            table = Table(spec.name, counts, row_labels=first, col_labels=second)
        else:
            table = Table(spec.name, counts, row_labels=[""], col_labels=first)
        return table, measure, data.data_version

    def _impact_table(self, spec: ReportSpec) -> tuple[Table, Measure, str]:
        """People by the combination of services they received, with the mean change in their outcome score
        between their first and last assessment, linked across datasets and partners."""
        service_column, outcome_column = spec.service_column, spec.outcome_column
        if service_column is None or outcome_column is None:
            raise ValueError(f"report {spec.name!r}: an impact report needs its service and outcome columns")
        columns = {service_column, outcome_column, *spec.date_columns.values()}
        data = analysis.load(self.storage, self.index, spec.datasets, columns)
        services: dict[str, set[str]] = defaultdict(set)
        scores: dict[str, list[tuple[date, float]]] = defaultdict(list)
        for row in data.rows:
            person = row["_person"]
            if row.get(service_column):
                services[person].add(str(row[service_column]))
            when, score = row.get(spec.date_columns[row["_dataset"]]), row.get(outcome_column)
            if when is not None and score is not None:
                scores[person].append((when, float(score)))
        changes: dict[str, list[float]] = defaultdict(list)
        for person, measured in scores.items():
            if len(measured) >= 2:
                measured.sort()
                combination = "+".join(sorted(services.get(person, ()))) or "no service recorded"
                changes[combination].append(measured[-1][1] - measured[0][1])
        labels = sorted(changes)
        table = Table(spec.name, [[len(changes[label]) for label in labels]], row_labels=[""], col_labels=labels)
        means: Measure = {(j, 0): SUPPRESSED if spec.rule.dominance.failure(changes[label])
                          else round(sum(changes[label]) / len(changes[label]), 1) for j, label in enumerate(labels)}
        return table, means, data.data_version

    # Writing -----------------------------------------------------------------------------------------------

    def _metadata(self, spec: ReportSpec, table: Table, result: Protection, data_version: str,
                  today: date) -> dict[str, Any]:
        return {"report": spec.name, "audience": spec.audience, "date": today.isoformat(),
                "generated_at": self.clock().isoformat(timespec="seconds"),
                "status": "published" if result.ok else "blocked", "blocked_reason": result.blocked,
                "rule": {"type": spec.rule.kind, "smallest_published": spec.rule.smallest_published,
                         "rounded_to_5": spec.rule.rounds},
                "cells_hidden": {"primary": len(result.primary), "secondary": len(result.secondary)},
                "attack": {"hidden_cells": len(result.ranges), "narrowest_range": _finite(result.min_width()),
                           "required": spec.rule.smallest_published, "passed": result.ok},
                "excluded": "restricted people and people on the suppression register",
                "policy_version": self.policy.version, "data_version": data_version}

    def _csv(self, spec: ReportSpec, table: Table, result: Protection,
             measure: Measure | None) -> str:
        if table.one_way:
            header = [spec.dimensions[0] if spec.dimensions else "services", "people" if spec.measure != "rows"
                      else "rows"]
            if measure is not None:
                header.append(f"{spec.measure} {spec.measure_column or 'change in ' + str(spec.outcome_column)}")
            rows: list[Sequence[object]] = []
            for j, label in enumerate(table.col_labels):
                shown = result.cell(table, 0, j)
                row: list[object] = [label, shown]
                if measure is not None:
                    row.append(measure.get((j, 0)) if shown != SUPPRESSED else SUPPRESSED)
                rows.append(row)
            rows.append(["Total", result.total(table)] + ([""] if measure is not None else []))
            return to_csv(header, rows)
        header = [f"{spec.dimensions[0]} \\ {spec.dimensions[1]}", *table.col_labels, "Total"]
        rows = [[label, *[result.cell(table, i, j) for j in range(len(table.col_labels))], result.row_total(table, i)]
                for i, label in enumerate(table.row_labels)]
        rows.append(["Total", *[result.col_total(table, j) for j in range(len(table.col_labels))],
                     result.total(table)])
        return to_csv(header, rows)

    def _html(self, spec: ReportSpec, table: Table, result: Protection,
              measure: Measure | None, metadata: dict[str, Any]) -> str:
        import csv

        rows = list(csv.reader(io.StringIO(self._csv(spec, table, result, measure))))
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows[1:])
        chart = base64.b64encode(_chart(spec, table, result)).decode()
        return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(spec.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style>
</head><body><h1>{html.escape(spec.name.replace('-', ' ').capitalize())}</h1>
<p>{html.escape(self.policy.programme.name)}, for {html.escape(spec.audience)}. Produced {metadata['date']}.</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p><img alt="Chart of the published counts" src="data:image/png;base64,{chart}"></p>
<p>c: suppressed to protect confidentiality (counts below {spec.rule.smallest_published}, and further cells so that
none can be worked out).{' Other counts are rounded to the nearest 5.' if spec.rule.rounds else ''}
Restricted people and people who opted out are not included.</p></body></html>"""

    def _put(self, name: str, data: bytes, content_type: str) -> None:
        from azure.storage.blob import ContentSettings

        self.storage.platform_blob(REPORTS, name).upload_blob(
            data, overwrite=True, content_settings=ContentSettings(content_type=content_type))


def _newest_first_key(run: tuple[str, str]) -> tuple[str, str]:
    report, day = run
    return (day, report)


def _label(value: object) -> str:
    return NOT_RECORDED if value is None else str(value)


def _count(measure: str, rows: list[dict[str, Any]]) -> int:
    return len(rows) if measure == "rows" else len({row["_person"] for row in rows})


def _per_person(rows: list[dict[str, Any]], column: str) -> list[float]:
    """Each person's contribution to a cell's sum: dominance is about people, however many rows each has."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        if row.get(column) is not None:
            totals[row["_person"]] += float(row[column])
    return list(totals.values())


def _aggregate(measure: str, values: list[Any]) -> float:
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return 0.0
    return round(sum(numbers), 1) if measure == "sum" else round(sum(numbers) / len(numbers), 1)


def _finite(value: float) -> float | None:
    return None if value == float("inf") else round(value, 2)


def _chart(spec: ReportSpec, table: Table, result: Protection) -> bytes:
    """A bar chart of the published counts; suppressed cells are drawn empty and marked c."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 3.5), dpi=100)
    width = 0.8 / len(table.cells)
    for i, row in enumerate(table.cells):
        for j in range(len(row)):
            shown = result.cell(table, i, j)
            x = j + i * width
            if shown == SUPPRESSED:
                axes.bar(x, 0, width=width)
                axes.annotate("c", (x, 0), ha="center", va="bottom")
            else:
                axes.bar(x, shown, width=width, color=f"C{i}",
                         label=table.row_labels[i] if j == 0 and not table.one_way else None)
    axes.set_xticks([j + 0.4 - width / 2 for j in range(len(table.col_labels))], table.col_labels, rotation=20,
                    ha="right", fontsize=8)
    axes.set_ylabel("people" if spec.measure != "rows" else "rows")
    if not table.one_way:
        axes.legend(title=spec.dimensions[0], fontsize=8)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()
