"""The programme policy: one YAML file per deployment, validated on load.

The document's shape and the rules within a dataset are the pydantic models of `shared.policy.models` (whose JSON
Schema is published for editors); the rules that span the policy (a report's columns exist, an anchor on programme end
needs the end date) are here. Every problem is reported at once, each naming the file, the key path, what is wrong and
what is allowed, so that an operator can fix a policy in one pass. See docs/policy.md for the format.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shared.policy import models
from shared.policy.contracts import Column, Contract
from shared.policy.disclosure_rules import Dominance, Rule
from shared.policy.models import EU_REGIONS as EU_REGIONS
from shared.policy.models import RESIDENCY as RESIDENCY
from shared.policy.models import UK_REGIONS as UK_REGIONS
from shared.policy.models import PolicyDocument
from shared.policy.retention_rules import Offset, RetentionRule


@dataclass(frozen=True)
class PolicyIssue:
    file: str
    path: str
    problem: str
    allowed: str | None = None

    def __str__(self) -> str:
        tail = f"; allowed: {self.allowed}" if self.allowed else ""
        return f"{self.file}: {self.path}: {self.problem}{tail}"


class PolicyError(ValueError):
    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("policy is not valid:\n" + "\n".join(f"  - {issue}" for issue in issues))


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_line_chars: int
    max_rows: int
    max_link_days: int = 7
    """The longest a partner's upload link may stay valid."""


@dataclass(frozen=True)
class Dataset:
    name: str
    partner: str
    basis: str
    contract: Contract
    retention: RetentionRule
    special_category: bool = False
    description: str = ""
    row_key: tuple[str, ...] = ()
    """Columns whose values make a row the same row: a row sent again with them replaces the stored copy."""
    label: str | None = None
    """The dataset's name as people read it (`Health visiting reviews`)."""

    @property
    def title(self) -> str:
        """The dataset's label, or its name made readable."""
        return self.label or self.name.replace("-", " ").capitalize()

    @property
    def consent_column(self) -> Column | None:
        return next((c for c in self.contract.columns if c.role == "consent"), None)


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    kind: str
    datasets: dict[str, Dataset]

    @property
    def container(self) -> str:
        return f"drop-{self.id}"


@dataclass(frozen=True)
class Programme:
    name: str
    controller: str
    residency: str
    region: str
    programme_end: date | None
    limits: Limits
    area: dict[str, Any] = field(default_factory=dict)


MEASURES = ("people", "rows", "sum", "mean", "rate")
"""`rate:<a>[-<b>...]/<c>` is 100 x the sum of a (less the sums of b ...) over the sum of c: a percentage of a
total, as attendance is of possible sessions (`rate:sessions_possible-sessions_absent/sessions_possible`)."""
REPORT_KINDS = ("table", "impact")


@dataclass(frozen=True)
class ReportSpec:
    """An anonymised report: `table` counts people (or rows, or sums or means of a column) by one or two stored
    columns; `impact` compares each person's first and last outcome score by the combination of services."""

    name: str
    audience: str
    kind: str
    datasets: tuple[str, ...]
    rule: Rule
    dimensions: tuple[str, ...] = ()
    measure: str = "people"
    measure_column: str | None = None
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    service_column: str | None = None
    outcome_column: str | None = None
    date_columns: dict[str, str] = field(default_factory=dict)
    title: str = ""
    """The report's heading and its chart's title, as its audience reads it."""
    measure_label: str = ""
    """What the measure shows, with its unit (`Attendance (% of possible sessions)`)."""

    @property
    def measure_columns(self) -> tuple[str, ...]:
        """The stored columns the measure reads: one for sum and mean, the rate's numerator and denominator."""
        if self.measure_column is None:
            return ()
        return tuple(re.split(r"[-/]", self.measure_column))

    @property
    def heading(self) -> str:
        return self.title or self.name.replace("-", " ").capitalize()


@dataclass(frozen=True)
class ExtractSpec:
    """A pseudonymised research extract for one recipient, k-anonymous on its quasi-identifiers."""

    name: str
    recipient: str
    datasets: tuple[str, ...]
    columns: tuple[str, ...]
    quasi_identifiers: tuple[str, ...]
    k: int
    expires: date
    purpose: str = ""
    """What the recipient agreed to use the extract for: recorded with every agreement."""
    sensitive: tuple[str, ...] = ()
    """Sensitive attributes: every published group shows at least `l` distinct values of each."""
    l: int = 1  # noqa: E741 - the l of l-diversity
    max_suppressed_percent: float = 0.0
    """The most people whose rows may be suppressed, as a share of everyone in the extract."""


@dataclass(frozen=True)
class Policy:
    source: str
    version: str
    """SHA-256 of the policy file's bytes (first 12 hex digits): recorded with every ingest."""
    programme: Programme
    partners: dict[str, Partner]
    reports: dict[str, ReportSpec]
    extracts: dict[str, ExtractSpec]

    def partner_for_container(self, container: str) -> Partner | None:
        if not container.startswith("drop-"):
            return None
        return self.partners.get(container.removeprefix("drop-"))


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    raw = path.read_bytes()
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = f"not valid YAML: {getattr(error, 'problem', error)}"
        raise PolicyError([PolicyIssue(str(path), where, problem)]) from None
    checked, issues = check(str(path), document)
    if checked is None or issues:
        raise PolicyError(issues)
    return build(checked, source=str(path), version=hashlib.sha256(raw).hexdigest()[:12])


def check(file: str, document: Any) -> tuple[PolicyDocument | None, list[PolicyIssue]]:
    """Every problem of a policy document at once: its shape and each dataset's rules (the models), then the rules
    that span the policy, judged on every part that is itself valid."""
    try:
        checked: PolicyDocument | None = PolicyDocument.model_validate(document)
        issues: list[PolicyIssue] = []
    except ValidationError as failure:
        checked, issues = None, [issue_from(file, error) for error in failure.errors()]
    parts = _Parts.of(checked) if checked is not None else _Parts.salvage(document)
    issues += [PolicyIssue(file, path, problem, allowed) for path, problem, allowed in parts.problems()]
    return checked, issues


# What pydantic found, as an operator reads it ------------------------------------------------------------------


def issue_from(file: str, error: ErrorDetails) -> PolicyIssue:
    """One validation error: its key path as the policy spells it, what is wrong and what is allowed. Never the
    value found: messages come from the error's type and the schema, not from the input."""
    path, node, parent = locate(error["loc"])
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        roles = ", ".join(_tags(node))
        return PolicyIssue(file, f"{path}.role", "is required" if kind == "union_tag_not_found" else
                           "is not a column role", roles)
    if kind == "extra_forbidden":
        anchors = ", or x-<name> for YAML anchors" if "patternProperties" in parent else ""
        return PolicyIssue(file, path, "unknown key", ", ".join(parent.get("properties", {})) + anchors)
    if kind == "string_pattern_mismatch":
        problem, allowed = models.PATTERN_HINTS.get(str(ctx.get("pattern")), ("does not match its pattern", None))
        return PolicyIssue(file, path, problem, allowed or str(ctx.get("pattern")))
    problem, allowed = _MESSAGES.get(kind, (error["msg"], None))
    if kind == "policy":
        allowed = ctx.get("allowed")
    elif kind == "literal_error":
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
    elif "minimum" in node and "maximum" in node:
        allowed = f"a whole number from {node['minimum']} to {node['maximum']}"
    elif "minimum" in node:
        allowed = f"a whole number of at least {node['minimum']}"
    elif kind == "date_type":
        allowed = "YYYY-MM-DD"
    elif kind == "string_too_long":
        allowed = f"at most {ctx.get('max_length')} characters"
    return PolicyIssue(file, path, problem, allowed)


_MESSAGES = {
    "missing": ("is required", None),
    "literal_error": ("is not allowed", None),
    "bool_type": ("must be true or false", None),
    "int_type": ("must be a whole number", None),
    "greater_than_equal": ("is too small", None),
    "less_than_equal": ("is too large", None),
    "float_type": ("must be a number", None),
    "date_type": ("must be a date", None),
    "string_type": ("must be text", None),
    "string_too_long": ("is too long", None),
    "dict_type": ("must be a mapping", "key: value lines, or {key: value}"),
    "model_type": ("must be a mapping", "key: value lines, or {key: value}"),
    "model_attributes_type": ("must be a mapping", "key: value lines, or {key: value}"),
    "list_type": ("must be a list", "a YAML list, such as [first, second]"),
    "too_short": ("must not be empty", "at least one entry"),
}
"""What is wrong, by pydantic's error type: its own messages are kept for anything else (none quotes the value)."""


def locate(loc: tuple[int | str, ...]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The key path of an error's location as the policy spells it (`partners.a.datasets.b.columns.c.role`,
    `reports[0].measure`), and the schema of the node there and of its parent (for the keys it allows)."""
    node, parent, path = _resolve(schema()), {}, ""
    for part in loc:
        if part == "[key]":  # a mapping key that broke a rule: the path already ends with it
            continue
        tagged = node.get("discriminator", {}).get("mapping", {}).get(part)
        if tagged is not None:  # the column role that chose the model: not a key of the policy
            node = _resolve({"$ref": tagged})
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        parent, node = node, _resolve(_child(node, part))
    return path or "(root)", node, parent


@cache
def schema() -> dict[str, Any]:
    return PolicyDocument.model_json_schema()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref, and an optional key's anyOf to the schema that is not null."""
    if "$ref" in node:
        return _resolve(schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]])
    if "anyOf" in node:
        return _resolve(next((n for n in node["anyOf"] if n.get("type") != "null"), {}))
    return node


def _child(node: dict[str, Any], part: int | str) -> dict[str, Any]:
    if isinstance(part, int):
        return node.get("items", {})
    if part in node.get("properties", {}):
        return node["properties"][part]
    patterns = node.get("patternProperties", {})
    extra = node.get("additionalProperties")
    return next(iter(patterns.values()), extra if isinstance(extra, dict) else {})


def _tags(node: dict[str, Any]) -> list[str]:
    return list(node.get("discriminator", {}).get("mapping", {}))


# Rules that span the policy ------------------------------------------------------------------------------------


@dataclass
class _Parts:
    """The parts of a policy that are valid on their own, keyed by where they sit: the rules that span the policy
    are judged on these, so a broken dataset does not hide a report's problems."""

    programme_end: date | None
    dataset_names: set[str]
    datasets: dict[str, list[tuple[str, models.DatasetSpec]]]
    """Dataset name -> (key path, dataset) for each partner's valid dataset of that name."""
    reports: list[tuple[str, models.ReportSpecModel]]
    extracts: list[tuple[str, models.ExtractSpecModel]]
    retentions: list[tuple[str, models.RetentionSpec]]
    """Each dataset's valid retention rule, whether or not the rest of its dataset is valid."""

    @classmethod
    def of(cls, document: PolicyDocument) -> _Parts:
        datasets: dict[str, list[tuple[str, models.DatasetSpec]]] = {}
        for partner_id, partner in document.partners.items():
            for name, dataset in partner.datasets.items():
                datasets.setdefault(name, []).append((f"partners.{partner_id}.datasets.{name}", dataset))
        return cls(document.programme.programme_end, set(datasets), datasets,
                   [(f"reports[{i}]", r) for i, r in enumerate(document.reports)],
                   [(f"extracts[{i}]", e) for i, e in enumerate(document.extracts)],
                   [(f"{path}.retention", d.retention) for paths in datasets.values() for path, d in paths])

    @classmethod
    def salvage(cls, document: Any) -> _Parts:
        """The valid parts of a policy that as a whole is not."""
        root = _mapping(document)
        end = _mapping(root.get("programme")).get("programme_end")
        names: set[str] = set()
        datasets: dict[str, list[tuple[str, models.DatasetSpec]]] = {}
        retentions: list[tuple[str, models.RetentionSpec]] = []
        for partner_id, partner in _mapping(root.get("partners")).items():
            for name, node in _mapping(_mapping(partner).get("datasets")).items():
                path = f"partners.{partner_id}.datasets.{name}"
                names.add(str(name))
                if (dataset := _valid(models.DatasetSpec, node)) is not None:
                    datasets.setdefault(name, []).append((path, dataset))
                if (retention := _valid(models.RetentionSpec, _mapping(node).get("retention"))) is not None:
                    retentions.append((f"{path}.retention", retention))
        return cls(end if isinstance(end, date) else None, names, datasets,
                   list(_valid_entries(root.get("reports"), "reports", models.ReportSpecModel)),
                   list(_valid_entries(root.get("extracts"), "extracts", models.ExtractSpecModel)), retentions)

    def problems(self) -> Iterator[tuple[str, str, str | None]]:
        for path, retention in self.retentions:
            if (retention.anchor == "programme_end" or retention.cap) and not self.programme_end:
                yield f"{path}.anchor", "needs programme.programme_end", "set programme.programme_end"
        for path, report in self.reports:
            yield from self.report_problems(path, report)
        for path, extract in self.extracts:
            yield from self.extract_problems(path, extract)

    def columns_of(self, names: list[str]) -> set[str] | None:
        """The stored columns of these datasets, or None where one of them is not valid to judge by."""
        if any(name in self.dataset_names and name not in self.datasets for name in names):
            return None
        return {column.output_name for name in names for _, dataset in self.datasets.get(name, [])
                for column in _contract(dataset) if column.output_name}

    def dataset_problems(self, path: str, names: list[str]) -> Iterator[tuple[str, str, str | None]]:
        for index, name in enumerate(names):
            if name not in self.dataset_names:
                yield (f"{path}.datasets[{index}]", "is not a dataset of the policy",
                       ", ".join(sorted(self.dataset_names)))

    def report_problems(self, path: str, report: models.ReportSpecModel) -> Iterator[tuple[str, str, str | None]]:
        yield from self.dataset_problems(path, report.datasets)
        if report.kind == "table" and not 1 <= len(report.dimensions) <= 2:
            yield f"{path}.dimensions", "a table report has one or two dimensions", "one or two stored columns"
        columns = self.columns_of(report.datasets)
        if columns is None:
            return
        allowed = ", ".join(sorted(columns))
        what = "is not a stored column of the report's datasets"
        measure_columns = re.split(r"[-/]", report.measure.partition(":")[2])
        if any(name and name not in columns for name in measure_columns):
            yield f"{path}.measure", f"names a column that {what.removeprefix('is ')}", allowed
        yield from _unknown(f"{path}.dimensions", report.dimensions, columns, what)
        for name in report.filters:
            if name not in columns:
                yield f"{path}.filters.{name}", what, allowed
        if report.kind == "impact":
            for key in ("service_column", "outcome_column"):
                if getattr(report, key) not in columns:
                    yield f"{path}.{key}", "an impact report names a stored column of its datasets", allowed
            if set(report.date_columns) != set(report.datasets):
                yield f"{path}.date_columns", "name the date column of each of the report's datasets", \
                    ", ".join(report.datasets)

    def extract_problems(self, path: str, extract: models.ExtractSpecModel) -> Iterator[tuple[str, str, str | None]]:
        yield from self.dataset_problems(path, extract.datasets)
        columns = self.columns_of(extract.datasets)
        if columns is not None:
            yield from _unknown(f"{path}.columns", extract.columns, columns,
                                "is not a stored column of the extract's datasets")
        yield from _unknown(f"{path}.quasi_identifiers", extract.quasi_identifiers, set(extract.columns),
                            "is not one of the extract's columns")


def _least_l(extract: models.ExtractSpecModel) -> int:
    """l-diversity means at least two values of each sensitive attribute; without any, it is not asked for."""
    return 2 if extract.sensitive else 1


def _unknown(path: str, names: list[str], allowed: set[str], what: str) -> Iterator[tuple[str, str, str | None]]:
    for index, name in enumerate(names):
        if name not in allowed:
            yield f"{path}[{index}]", what, ", ".join(sorted(allowed))


def _mapping(node: Any) -> dict[Any, Any]:
    return node if isinstance(node, dict) else {}


M = TypeVar("M", bound=BaseModel)


def _valid(model: type[M], node: Any) -> M | None:
    try:
        return model.model_validate(node, context={models.SHAPE_ONLY: True})
    except ValidationError:
        return None


def _valid_entries(nodes: Any, key: str, model: type[M]) -> Iterator[tuple[str, M]]:
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        if (entry := _valid(model, node)) is not None:
            yield f"{key}[{index}]", entry


def _contract(dataset: models.DatasetSpec) -> tuple[Column, ...]:
    return tuple(models.to_column(name, spec) for name, spec in dataset.columns.items())


# The value types the platform uses ----------------------------------------------------------------------------


def build(document: PolicyDocument, *, source: str, version: str) -> Policy:
    """The policy as the rest of the platform reads it, from a document that passed every check."""
    programme = _programme(document.programme)
    partners = {partner_id: Partner(partner_id, partner.name, partner.kind, {
        name: _dataset(name, partner_id, dataset) for name, dataset in partner.datasets.items()})
        for partner_id, partner in document.partners.items()}
    special = {name for partner in document.partners.values() for name, dataset in partner.datasets.items()
               if dataset.special_category}
    reports = {report.name: _report(report, special) for report in document.reports}
    extracts = {extract.name: ExtractSpec(
        extract.name, extract.recipient, tuple(extract.datasets), tuple(extract.columns),
        tuple(extract.quasi_identifiers), extract.k, extract.expires, purpose=extract.purpose,
        sensitive=tuple(extract.sensitive), l=extract.l or _least_l(extract),
        max_suppressed_percent=float(extract.max_suppressed_percent)) for extract in document.extracts}
    return Policy(source, version, programme, partners, reports, extracts)


def _programme(spec: models.ProgrammeSpec) -> Programme:
    limits = spec.limits
    return Programme(
        name=spec.name, controller=spec.controller, residency=spec.data_residency, region=spec.region,
        programme_end=spec.programme_end, area=dict(spec.area),
        limits=Limits(max_file_bytes=limits.max_file_mb * 1024 * 1024, max_line_chars=limits.max_line_chars,
                      max_rows=limits.max_rows, max_link_days=limits.max_link_days))


def _dataset(name: str, partner: str, spec: models.DatasetSpec) -> Dataset:
    contract = Contract(columns=_contract(spec), unexpected_columns=spec.unexpected_columns,
                        invalid_rows=spec.invalid_rows)
    retention = spec.retention
    column = models.birth_column(retention, {c.name: c for c in contract.columns})
    cap = Offset(retention.cap.years, retention.cap.months) if retention.cap else None
    rule = RetentionRule(retention.anchor, Offset(retention.years, retention.months),
                         column if retention.anchor in ("date_of_birth", "column") else None, cap)
    return Dataset(name, partner, spec.basis, contract, rule, spec.special_category, spec.description,
                   tuple(spec.row_key or ()), spec.label)


def _report(spec: models.ReportSpecModel, special: set[str]) -> ReportSpec:
    """A report's rule is stricter where it reads special-category data (see disclosure_rules.Rule)."""
    measure, _, measure_column = spec.measure.partition(":")
    dominance = Dominance(spec.rule.dominance.n, spec.rule.dominance.k / 100, spec.rule.dominance.p / 100)
    rule = Rule(spec.rule.type, spec.rule.threshold, bool(special & set(spec.datasets)), dominance)
    return ReportSpec(
        name=spec.name, audience=spec.audience, kind=spec.kind, datasets=tuple(spec.datasets),
        rule=rule, dimensions=tuple(spec.dimensions), measure=measure,
        measure_column=measure_column or None,
        filters={key: tuple(str(v) for v in values) for key, values in spec.filters.items()},
        service_column=spec.service_column, outcome_column=spec.outcome_column, date_columns=dict(spec.date_columns),
        title=spec.title, measure_label=spec.measure_label)
