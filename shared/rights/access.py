"""The Art 15 access pack: everything held about a person, and the facts about it the law requires.

One ZIP in exports/: per dataset a JSON and a (spreadsheet-safe) CSV of the person's rows, with each pseudonym
replaced by the identifier the requester gave that found it (or "a linked identifier"); and a readable summary of
purposes, categories, sources, recipients, retention and rights, drawn from the programme policy.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from datetime import date
from typing import Any

from shared.ingest.curated import INGEST_ID, PURGE_MONTH, SUBJECT_ID
from shared.platform.csvsafe import to_csv
from shared.policy.contracts import Column
from shared.policy.loader import Dataset, Policy

RIGHTS_BY_BASIS = {
    "consent": ["access", "rectification", "erasure", "restriction", "withdraw consent at any time"],
    "legitimate_interest": ["access", "rectification", "erasure", "restriction", "object"],
    "public_task": ["access", "rectification", "erasure", "restriction", "object"],
    "legal_obligation": ["access", "rectification", "restriction"],
}
BASIS_NAMES = {"consent": "consent (UK GDPR Art 6(1)(a))", "legitimate_interest": "legitimate interests (Art 6(1)(f))",
               "public_task": "public task (Art 6(1)(e))", "legal_obligation": "legal obligation (Art 6(1)(c))"}


def readable_rows(rows: Iterable[dict[str, Any]], labels: dict[str, str], person: set[str]) -> list[dict[str, Any]]:
    """The person's rows as they should read them: identifiers named, platform bookkeeping left out."""
    readable = []
    for row in rows:
        shown: dict[str, Any] = {}
        for name, value in row.items():
            if name in (SUBJECT_ID, INGEST_ID):
                continue
            if name == PURGE_MONTH:
                shown[KEPT_UNTIL] = value
            elif name.endswith("_pseudonym"):
                shown[name.removesuffix("_pseudonym")] = labels.get(value) or (
                    "a linked identifier" if value in person else ("(not held)" if value is None else "another person"))
            else:
                shown[name] = value.isoformat() if isinstance(value, date) else value
        readable.append(shown)
    return readable


GENERALISED = {"postcode_district": "postcode district only", "postcode_sector": "postcode sector only",
               "birth_month": "month and year only", "age_in_months": "as an age in months"}
KEPT_UNTIL = "kept_until_end_of"


def stored_title(column: Column, dataset: Dataset) -> str:
    """How a stored column reads to the person it is about: its label from the policy, and how it was reduced."""
    if column.role == "identifier":
        return f"{column.title} (held as a pseudonym)"
    if column.role == "quasi" and column.generalise:
        reduced = GENERALISED[column.generalise]
        at = dataset.contract.column(column.at or "")
        return f"{column.title} ({reduced}{f' at {at.title.lower()}' if at else ''})"
    return column.title


def _readable_columns(dataset: Dataset) -> dict[str, tuple[str, Column | None]]:
    """Each key of a readable row (see readable_rows) -> its title and its column."""
    shown: dict[str, tuple[str, Column | None]] = {}
    for column in dataset.contract.columns:
        if column.output_name:
            key = column.name if column.role == "identifier" else column.output_name
            shown[key] = (stored_title(column, dataset), column)
    shown[KEPT_UNTIL] = ("Kept until the end of", None)
    return shown


def summary(policy: Policy, held: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    datasets = []
    for (partner_id, name), rows in sorted(held.items()):
        dataset: Dataset = policy.partners[partner_id].datasets[name]
        stored = [stored_title(c, dataset) for c in dataset.contract.columns if c.output_name]
        datasets.append({
            "dataset": name,
            "title": dataset.title,
            "source": policy.partners[partner_id].name,
            "purpose": dataset.description or f"evaluation of {policy.programme.name}",
            "legal_basis": BASIS_NAMES[dataset.basis],
            "special_category": dataset.special_category,
            "categories_of_data": stored,
            "rows_held": len(rows),
            "retention": _retention_text(dataset),
            "kept_until_end_of": sorted({str(month) for r in rows
                                         if (month := r.get(KEPT_UNTIL, r.get(PURGE_MONTH)))}),
            "recipients": _recipients(policy, name),
            "your_rights": RIGHTS_BY_BASIS[dataset.basis],
        })
    return {"programme": policy.programme.name, "controller": policy.programme.controller,
            "where_it_is_held": f"Microsoft Azure, {policy.programme.region} ({policy.programme.residency})",
            "automated_decisions": "none: the data is used for evaluation and anonymised statistics only",
            "complaints": "You may complain to the Information Commissioner's Office (ico.org.uk).",
            "datasets": datasets}


def _retention_text(dataset: Dataset) -> str:
    rule = dataset.retention
    anchor = {"received": "the date we received it", "date_of_birth": "the date of birth",
              "programme_end": "the end of the programme", "column": f"the {_column_title(dataset)}"}[rule.anchor]
    text = f"{rule.offset.years} years and {rule.offset.months} months after {anchor}, to the end of that month"
    return text + (f", and no longer than {rule.cap.years} years after the programme ends" if rule.cap else "")


def _column_title(dataset: Dataset) -> str:
    column = dataset.contract.column(dataset.retention.column or "")
    return column.title.lower() if column else "date recorded"


def _recipients(policy: Policy, dataset: str) -> list[str]:
    recipients = [f"{e.recipient} (pseudonymised research extract)" for e in policy.extracts.values()
                  if dataset in e.datasets]
    audiences = sorted({r.audience for r in policy.reports.values() if dataset in r.datasets})
    return recipients + [f"{a} (anonymised statistics only)" for a in audiences]


def markdown(document: dict[str, Any], given: list[str], tables: dict[str, list[str]] | None = None) -> str:
    """The readable summary; `tables` (dataset name -> Markdown lines) shows the person's rows under each dataset."""
    lines = [f"# Your data held by {document['programme']}", "",
             f"Controller: {document['controller']}. Where it is held: {document['where_it_is_held']}.", "",
             f"You asked using: {', '.join(given)}. Each row below names the identifier that found it.", ""]
    for item in document["datasets"]:
        lines += [f"## {item['title']} (from {item['source']})", "",
                  f"- Purpose: {item['purpose']}", f"- Legal basis: {item['legal_basis']}",
                  f"- Data held: {', '.join(item['categories_of_data'])}", f"- Rows held: {item['rows_held']}",
                  f"- Kept: {item['retention']}", f"- Shared with: {', '.join(item['recipients']) or 'no one'}",
                  f"- Your rights: {', '.join(item['your_rights'])}", "", *(tables or {}).get(item["dataset"], [])]
    lines += [f"Automated decisions: {document['automated_decisions']}", "", document["complaints"], ""]
    return "\n".join(lines)


def rows_table(dataset: Dataset, rows: list[dict[str, Any]]) -> list[str]:
    """The person's rows as a Markdown table: columns by their labels, coded values by what they mean."""
    columns = [(key, title, column) for key, (title, column) in _readable_columns(dataset).items()
               if any(key in row for row in rows)]
    if not rows or not columns:
        return []
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = [_cell(row.get(key), column) for key, _, column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _cell(value: Any, column: Column | None) -> str:
    if value is None:
        return ""
    text = column.value_label(value) if column is not None and column.role == "attribute" else str(value)
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def build_pack(policy: Policy, held: dict[tuple[str, str], list[dict[str, Any]]], given: list[str]) -> bytes:
    document = summary(policy, held)
    tables: dict[str, list[str]] = {}
    for (partner, name), rows in sorted(held.items()):
        tables.setdefault(name, []).extend(rows_table(policy.partners[partner].datasets[name], rows))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as pack:
        pack.writestr("summary.md", markdown(document, given, tables))
        pack.writestr("summary.json", json.dumps(document, indent=2))
        for (partner, dataset), rows in sorted(held.items()):
            stem = f"{partner}-{dataset}"
            pack.writestr(f"{stem}.json", json.dumps(rows, indent=2, default=str))
            header = sorted({key for row in rows for key in row})
            pack.writestr(f"{stem}.csv", to_csv(header, ([row.get(k) for k in header] for row in rows)))
    return out.getvalue()
