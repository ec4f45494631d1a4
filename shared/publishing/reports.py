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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared.identity.index import PersonIndex
from shared.platform.audit import AuditLog
from shared.platform.auth import Problem
from shared.platform.csvsafe import to_csv
from shared.platform.paging import PageRequest, page_body, sorted_page
from shared.platform.storage import AUDIT, REPORTS, Storage
from shared.policy.contracts import Column
from shared.policy.loader import Policy, ReportSpec
from shared.publishing import analysis
from shared.publishing.disclosure import SUPPRESSED, Protection, Table, protect

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

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
        columns = set(spec.dimensions) | set(spec.filters) | set(spec.measure_columns)
        data = analysis.load(self.storage, self.index, spec.datasets, columns)
        rows = [r for r in data.rows if all(_label(r.get(c)) in allowed for c, allowed in spec.filters.items())]
        first = sorted({_label(r.get(spec.dimensions[0])) for r in rows})
        second = sorted({_label(r.get(spec.dimensions[1])) for r in rows}) if len(spec.dimensions) == 2 else [""]
        groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            i = second.index(_label(row.get(spec.dimensions[1]))) if len(spec.dimensions) == 2 else 0
            groups[(first.index(_label(row.get(spec.dimensions[0]))), i)].append(row)
        counts = [[_count(spec.measure, groups[(j, i)]) for j in range(len(first))] for i in range(len(second))]
        measure: Measure | None = None
        if spec.measure in ("sum", "mean", "rate"):
            measure_column = spec.measure_column
            if measure_column is None:
                raise ValueError(f"report {spec.name!r}: a {spec.measure} needs the column it measures")
            if spec.measure == "rate":
                measure = {key: _rate(measure_column, group) for key, group in groups.items()}
            else:
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
                header.append(spec.measure_label or
                              f"{spec.measure} {spec.measure_column or 'change in ' + str(spec.outcome_column)}")
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
        labels = Labels.of(self.policy, spec)
        frame = _people_table(spec, table, result, measure, labels)
        body = frame.to_html(index=False, escape=True, border=0, na_rep="")
        chart = base64.b64encode(_chart(spec, table, result, measure, labels, disclosure_note(spec))).decode()
        return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(spec.heading)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style>
</head><body><h1>{html.escape(spec.heading)}</h1>
<p>{html.escape(self.policy.programme.name)}, for {html.escape(spec.audience)}. Produced {metadata['date']}.</p>
{body}
<p><img alt="{html.escape(_chart_alt(spec, labels))}" src="data:image/png;base64,{chart}"></p>
<p>{html.escape(disclosure_note(spec))}</p></body></html>"""

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


def disclosure_note(spec: ReportSpec) -> str:
    """What a reader of the page or the chart must know of the figures: what c means and who is left out."""
    rounding = " Other counts are rounded to the nearest 5." if spec.rule.rounds else ""
    measured = spec.measure in ("sum", "mean", "rate") or spec.kind == "impact"
    shown = " A figure is shown only where its count is." if measured else ""
    return (f"c: suppressed to protect confidentiality (counts below {spec.rule.smallest_published}, and further "
            f"cells so that none can be worked out).{rounding}{shown} Restricted people and people who opted out "
            "are not included.")


def _rate(expression: str, rows: list[dict[str, Any]]) -> float:
    """`a-b/c` over these rows: 100 x (sum of a less sum of b) / sum of c, rows missing any of them left out."""
    numerator, denominator = expression.split("/")
    first, *less = numerator.split("-")
    complete = [row for row in rows if all(row.get(name) is not None for name in (first, *less, denominator))]
    whole = sum(float(row[denominator]) for row in complete)
    part = sum(float(row[first]) - sum(float(row[name]) for name in less) for row in complete)
    return round(100 * part / whole, 1) if whole else 0.0


def _aggregate(measure: str, values: list[Any]) -> float:
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return 0.0
    return round(sum(numbers), 1) if measure == "sum" else round(sum(numbers) / len(numbers), 1)


def _finite(value: float) -> float | None:
    return None if value == float("inf") else round(value, 2)


@dataclass(frozen=True)
class Labels:
    """How the report's dimensions, their codes and its measure read, from the policy's column labels."""

    dimensions: tuple[str, ...]
    columns: tuple[Column | None, ...]
    measure: str
    unit: str
    count: str = "People"
    """What the counts count: people (distinct, linked across datasets), or records."""

    @classmethod
    def of(cls, policy: Policy, spec: ReportSpec) -> Labels:
        stored = _stored_columns(policy, spec.datasets)
        if spec.kind == "impact":
            service = stored.get(spec.service_column or "")
            outcome = stored.get(spec.outcome_column or "")
            outcome_title = outcome.title if outcome else str(spec.outcome_column)
            return cls(("Services received",), (service,),
                       spec.measure_label or f"Mean change in {outcome_title} (points)", "points")
        columns = tuple(stored.get(name) for name in spec.dimensions)
        titles = tuple(c.title if c else name for c, name in zip(columns, spec.dimensions, strict=True))
        measured = stored.get(spec.measure_column or "")
        what = measured.title if measured else str(spec.measure_column)
        default = {"people": "People (count)", "rows": "Records (count)", "sum": f"Total {what}",
                   "mean": f"Mean {what}", "rate": "Rate (%)"}[spec.measure]
        return cls(titles, columns, spec.measure_label or default, "%" if spec.measure == "rate" else "",
                   "Records" if spec.measure == "rows" else "People")

    def code(self, dimension: int, text: str) -> str:
        """A stored value as its audience reads it: the policy's label, Yes/No for booleans, else as stored."""
        column = self.columns[dimension] if dimension < len(self.columns) else None
        if column is None or text == NOT_RECORDED:
            return text
        parts = text.split("+") if self.dimensions == ("Services received",) else [text]
        return " + ".join(_value_label(column, part) for part in parts)


def _value_label(column: Column, text: str) -> str:
    if column.type == "boolean" and text in ("True", "False"):
        return column.value_label(text == "True")
    return column.value_label(text)


def _stored_columns(policy: Policy, datasets: tuple[str, ...]) -> dict[str, Column]:
    """Stored column name -> its policy column, across the partners that send these datasets."""
    found: dict[str, Column] = {}
    for partner in policy.partners.values():
        for name in datasets:
            dataset = partner.datasets.get(name)
            for column in dataset.contract.columns if dataset else ():
                if column.output_name:
                    found.setdefault(column.output_name, column)
    return found


def _people_table(spec: ReportSpec, table: Table, result: Protection, measure: Measure | None,
                  labels: Labels) -> pd.DataFrame:
    """The published table as people read it: labelled headings and codes, `c` where a cell is suppressed."""
    import pandas as pd

    if table.one_way:
        records = []
        for j, code in enumerate(table.col_labels):
            shown = result.cell(table, 0, j)
            record: dict[str, object] = {labels.dimensions[0]: labels.code(0, code), labels.count: shown}
            if measure is not None:
                record[labels.measure] = SUPPRESSED if shown == SUPPRESSED else measure.get((j, 0))
            records.append(record)
        records.append({labels.dimensions[0]: "Total", labels.count: result.total(table)})
        return pd.DataFrame.from_records(records)
    columns = [labels.code(1, code) for code in table.col_labels]
    cells = [[result.cell(table, i, j) for j in range(len(columns))] for i in range(len(table.row_labels))]
    frame = pd.DataFrame(cells, columns=columns)
    frame["Total"] = [result.row_total(table, i) for i in range(len(table.row_labels))]
    frame.insert(0, f"{labels.dimensions[0]} by {labels.dimensions[1]}",
                 [labels.code(0, code) for code in table.row_labels])
    totals = ["Total", *[result.col_total(table, j) for j in range(len(columns))], result.total(table)]
    return pd.concat([frame, pd.DataFrame([totals], columns=frame.columns)], ignore_index=True)


def _chart_alt(spec: ReportSpec, labels: Labels) -> str:
    shown = labels.measure if spec.measure in ("sum", "mean", "rate") or spec.kind == "impact" else labels.count
    return f"Bar chart: {shown} by {labels.dimensions[0]}; c marks suppressed figures."


def _chart(spec: ReportSpec, table: Table, result: Protection, measure: Measure | None,
           labels: Labels, note: str) -> bytes:
    import matplotlib.pyplot as plt

    figure = chart_figure(spec, table, result, measure, labels, note)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()


def chart_figure(spec: ReportSpec, table: Table, result: Protection, measure: Measure | None,
                 labels: Labels, note: str) -> Figure:
    """A bar chart that reads without the table: the report's title, labelled axes with units, the policy's labels
    for codes, each bar's value, suppressed figures marked `c`, and the disclosure note beneath."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = measure is not None
    figure, axes = plt.subplots(figsize=(8, 4.6), dpi=100)
    width = 0.8 / len(table.cells)
    for i, row in enumerate(table.cells):
        for j in range(len(row)):
            shown = result.cell(table, i, j)
            found = None if shown == SUPPRESSED else (measure or {}).get((j, i)) if measured else shown
            value = None if found == SUPPRESSED else found  # a sum its contributors dominate is hidden too
            x = j + i * width
            legend = labels.code(0, table.row_labels[i]) if j == 0 and not table.one_way else None
            if value is None:
                axes.bar(x, 0, width=width, color="none", edgecolor="grey", hatch="//")
                axes.annotate("c", (x, 0), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom")
            else:
                axes.bar(x, value, width=width, color=f"C{i}", label=legend)
                text = f"{value:g}{labels.unit if labels.unit == '%' else ''}"
                axes.annotate(text, (x, value), xytext=(0, 2), textcoords="offset points", ha="center",
                              va="bottom", fontsize=8)
    ticks = [labels.code(1 if not table.one_way else 0, code) for code in table.col_labels]
    if measured and table.one_way:  # how many people each figure covers, so the chart stands alone
        ticks = [f"{tick}\n({result.cell(table, 0, j)} {labels.count.lower()})" for j, tick in enumerate(ticks)]
    axes.set_xticks([j + 0.4 - width / 2 for j in range(len(ticks))], ticks, rotation=15, ha="right", fontsize=8)
    axes.set_xlabel(labels.dimensions[-1] if not table.one_way else labels.dimensions[0])
    axes.set_ylabel(labels.measure if measured else labels.count + " (count)")
    if labels.unit == "%":
        axes.set_ylim(0, 105)
    axes.margins(y=0.12)
    axes.set_title(spec.heading, fontsize=11)
    if not table.one_way:
        axes.legend(title=labels.dimensions[0], fontsize=8)
    figure.text(0.01, 0.01, "\n".join(textwrap.wrap(note, 130)), fontsize=7, va="bottom", ha="left")
    figure.tight_layout(rect=(0, 0.09, 1, 1))
    return figure
