"""The data dictionary, generated from the programme policy: what each column of each dataset means to an analyst.

For every dataset: who sends it, under which legal basis, how long it is kept, and every column of the data
sharing agreement with its meaning, what is stored (and how it is generalised), and whether it is in the analysis
table. Written as JSON and Markdown beside the curated data (`curated/<dataset>/_dictionary.json` and `.md`) and
in `docs/data-dictionary/<programme>.md` (`python -m shared.cli dictionary --write docs/data-dictionary`).
"""

from __future__ import annotations

import json
from typing import Any

from azure.storage.blob import ContentSettings

from shared.platform.paging import PageRequest, page_body, sorted_page
from shared.platform.storage import CURATED, Storage
from shared.policy.contracts import Column
from shared.policy.loader import Policy
from shared.policy.retention_rules import describe
from shared.publishing.dataset_access import PARTNER, PERSON_KEY, datasets_of, view_name

BASES = {"consent": "Consent (UK GDPR Art 6(1)(a))", "legitimate_interest": "Legitimate interests (Art 6(1)(f))",
         "public_task": "Public task (Art 6(1)(e))", "legal_obligation": "Legal obligation (Art 6(1)(c))"}
GENERALISED = {"postcode_district": "postcode cut to its district (SW9)",
               "postcode_sector": "postcode cut to its sector (SW9 8)",
               "birth_month": "date of birth cut to its month (YYYY-MM)",
               "age_in_months": "date of birth turned into the age in whole months at {at}"}
ID_TYPES = {"nhs_number": "NHS number", "upn": "unique pupil number", "partner_ref": "the partner's own reference",
            "partner_pseudonym": "the partner's own pseudonym", "nhs_number_token": "NHS number tokenised at source"}
DICTIONARY_BLOB = "{dataset}/_dictionary.{kind}"


def dataset_dictionary(policy: Policy, dataset: str) -> dict[str, Any]:
    """One dataset's dictionary: the same for every partner that sends it, their bases and retention listed."""
    held = [(partner.id, found) for partner in policy.partners.values()
            if (found := partner.datasets.get(dataset)) is not None]
    if not held:
        raise KeyError(dataset)
    first = held[0][1]
    bases = sorted({BASES[found.basis] for _, found in held})
    kept = sorted({describe(found.retention) for _, found in held})
    columns = [_person_key(), _partner(), *(_column(column) for column in first.contract.columns)]
    for column in columns:  # what an analyst must know of each column: why it is held and for how long
        column["legal_basis"] = bases if column["stored_as"] else None
        column["kept"] = kept if column["stored_as"] else "not stored"
    return {
        "dataset": dataset, "table": view_name(dataset), "programme": policy.programme.name,
        "controller": policy.programme.controller, "description": first.description,
        "policy_version": policy.version,
        "partners": [{"partner": partner_id, "name": policy.partners[partner_id].name,
                      "legal_basis": BASES[found.basis], "special_category": found.special_category,
                      "retention": describe(found.retention)} for partner_id, found in held],
        "legal_basis": bases, "retention": kept,
        "excluded": "restricted people (Art 18, or an objection awaiting a decision), people on the suppression "
                    "register (erased, consent withdrawn, objection upheld) and rows not yet linked to a person",
        "columns": columns,
    }


def programme_dictionary(policy: Policy) -> list[dict[str, Any]]:
    return [dataset_dictionary(policy, dataset) for dataset in datasets_of(policy)]


def dictionary_page(policy: Policy, page: PageRequest) -> dict[str, Any]:
    """The datasets with their dictionaries, by name, a page at a time as every list is."""
    dictionaries = sorted(programme_dictionary(policy), key=lambda entry: str(entry["dataset"]))
    shown, following = sorted_page(dictionaries, lambda entry: (str(entry["dataset"]),), page)
    return {"programme": policy.programme.name, **page_body(shown, following)}


def _person_key() -> dict[str, Any]:
    return {"name": PERSON_KEY, "label": "Person key", "role": "key", "type": "string", "in_analysis_table": True,
            "meaning": "The person the row is about, as the platform's person index links them across partners "
                       "and datasets: join datasets on it. A keyed pseudonym that identifies nobody outside the "
                       "platform; it may change when the index links more records to the person or splits them, "
                       "so join within one read and never keep it as a lasting identifier.",
            "stored_as": PERSON_KEY, "generalisation": None, "values": None}


def _partner() -> dict[str, Any]:
    return {"name": PARTNER, "label": "Partner", "role": "key", "type": "string", "in_analysis_table": True,
            "meaning": "The partner that sent the row (its id in the programme policy).", "stored_as": PARTNER,
            "generalisation": None, "values": None}


def _column(column: Column) -> dict[str, Any]:
    shown = column.output_name is not None and column.role != "identifier"
    return {"name": column.name, "label": column.title, "role": column.role, "type": _type(column),
            "meaning": column.description or _meaning(column), "stored_as": column.output_name,
            "in_analysis_table": shown, "generalisation": _generalisation(column), "values": _values(column),
            "required": column.required}


def _type(column: Column) -> str:
    if column.role == "quasi":
        return "integer (months)" if column.generalise == "age_in_months" else "string"
    return column.type or "string"


def _meaning(column: Column) -> str:
    """What the policy says of a column that carries no description of its own."""
    if column.role == "identifier":
        what = ID_TYPES.get(column.id_type or "", column.id_type or "identifier")
        holder = "a family or household" if column.identifies == "group" else "the person"
        return f"{what[0].upper()}{what[1:]} of {holder}: pseudonymised on arrival; analysts see person_key instead."
    if column.role == "direct":
        return "A direct identifier: dropped on arrival, never stored" + (
            " (first turned into keyed match keys for linking people)." if column.match else ".")
    if column.role == "consent":
        return "The opt-in flag: rows without a yes are not stored; the flag itself is not stored."
    if column.role == "quasi":
        return f"{column.title}, generalised: {_generalisation(column)}."
    return f"{column.title}."


def _generalisation(column: Column) -> str | None:
    if column.role != "quasi" or column.generalise is None:
        return None
    return GENERALISED[column.generalise].format(at=column.at)


def _values(column: Column) -> Any:
    if column.role != "attribute":
        return None
    if column.values is not None:
        return {value: column.value_label(value) for value in column.values}
    if column.type == "boolean":
        return {"True": column.value_label(True), "False": column.value_label(False)}
    if column.type in ("integer", "number") and column.minimum is not None and column.maximum is not None:
        step = f" in steps of {column.step}" if column.step else ""
        return f"{column.minimum:g} to {column.maximum:g}{step}"
    return None


# Rendering ----------------------------------------------------------------------------------------------------

def markdown(entry: dict[str, Any]) -> str:
    lines = [f"## {entry['dataset']} (table `{entry['table']}`)", "", entry["description"], "",
             "| partner | legal basis | special category | kept |", "| --- | --- | --- | --- |"]
    lines += [f"| {p['name']} (`{p['partner']}`) | {p['legal_basis']} | {'yes' if p['special_category'] else 'no'} "
              f"| {p['retention']} |" for p in entry["partners"]]
    lines += ["", f"Left out of the table: {entry['excluded']}.", "",
              "| column | label | in the table as | meaning | generalisation | values |",
              "| --- | --- | --- | --- | --- | --- |"]
    for column in entry["columns"]:
        stored = f"`{column['stored_as']}`" if column["in_analysis_table"] else (
            "not shown (pseudonym)" if column["stored_as"] else "not stored")
        lines.append(f"| `{column['name']}` | {column['label']} | {stored} | {column['meaning']} | "
                     f"{column['generalisation'] or ''} | {_values_text(column['values'])} |")
    return "\n".join(lines) + "\n"


def _values_text(values: Any) -> str:
    if values is None:
        return ""
    if isinstance(values, dict):
        return ", ".join(code if label == code else f"{code}: {label}" for code, label in values.items())
    return str(values)


def programme_markdown(policy: Policy, source: str) -> str:
    head = [f"# Data dictionary: {policy.programme.name}", "",
            f"Generated from `{source}` by `python -m shared.cli dictionary --write docs/data-dictionary`; "
            "do not edit by hand. Each dataset is one table for analysts (see [analysis](../analysis.md)); "
            f"the controller is {policy.programme.controller}.", ""]
    return "\n".join(head) + "\n" + "\n".join(markdown(entry) for entry in programme_dictionary(policy))


def programme_json(policy: Policy) -> str:
    entries = [{k: v for k, v in entry.items() if k != "policy_version"} for entry in programme_dictionary(policy)]
    return json.dumps({"programme": policy.programme.name, "datasets": entries}, indent=2) + "\n"


def publish(policy: Policy, storage: Storage) -> list[str]:
    """Write each dataset's dictionary beside its curated data; returns the blob names written."""
    written = []
    for entry in programme_dictionary(policy):
        for kind, text, content_type in (("json", json.dumps(entry, indent=2), "application/json"),
                                         ("md", markdown(entry), "text/markdown")):
            name = DICTIONARY_BLOB.format(dataset=entry["dataset"], kind=kind)
            storage.platform_blob(CURATED, name).upload_blob(
                text.encode(), overwrite=True, content_settings=ContentSettings(content_type=content_type))
            written.append(name)
    return written
