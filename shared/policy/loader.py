"""The programme policy: one YAML file per deployment, validated on load.

Every problem is reported at once, each naming the file, the key path, what is wrong and what is allowed, so
that an operator can fix a policy in one pass. See docs/policy.md for the format.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypedDict

import yaml

from shared.identity.pseudonymise import BASE_TYPES
from shared.policy.contracts import (
    ATTRIBUTE_TYPES,
    DEFAULT_MAX_LENGTH,
    GENERALISATIONS,
    IDENTIFIES,
    INVALID_ROW_ACTIONS,
    MATCHES,
    ROLES,
    UNEXPECTED_COLUMN_ACTIONS,
    Column,
    Contract,
)
from shared.policy.disclosure_rules import RULES, Dominance, Rule
from shared.policy.retention_rules import ANCHORS, Offset, RetentionRule

UK_REGIONS = ("uksouth", "ukwest")
EU_REGIONS = (
    "westeurope", "northeurope", "francecentral", "francesouth", "germanywestcentral", "germanynorth",
    "swedencentral", "swedensouth", "italynorth", "polandcentral", "spaincentral", "belgiumcentral",
)
RESIDENCY = {"UK": UK_REGIONS, "EU": EU_REGIONS}
BASES = ("consent", "legitimate_interest", "public_task", "legal_obligation")
PARTNER_KINDS = ("school", "nursery", "nhs_trust", "council", "charity", "other")
PARTNER_ID = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,57}$")
DATASET_ID = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,62}$")
COLUMN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RATE = re.compile(r"^[a-z][a-z0-9_]*(-[a-z][a-z0-9_]*)*/[a-z][a-z0-9_]*$")
DEFAULT_LIMITS = {"max_file_mb": 100, "max_line_chars": 10_000, "max_rows": 5_000_000, "max_link_days": 7}


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
    checker = _Checker(str(path))
    policy = checker.policy(document, version=hashlib.sha256(raw).hexdigest()[:12])
    if checker.issues:
        raise PolicyError(checker.issues)
    assert policy is not None
    return policy


def _keys(node: Any) -> tuple[str, ...]:
    """Keys of a mapping whose keys are names the operator chooses (partners, datasets, columns)."""
    return tuple(node) if isinstance(node, dict) else ()


EXTRACT_KEYS = ("name", "recipient", "datasets", "columns", "quasi_identifiers", "k", "expires")
EXTRACT_OPTIONAL_KEYS = ("purpose", "sensitive", "l", "max_suppressed_percent")


def _stored_columns(partners: dict[str, Partner]) -> dict[str, set[str]]:
    """Dataset name -> the columns stored for it (as curated Parquet names them)."""
    stored: dict[str, set[str]] = {}
    for partner in partners.values():
        for dataset in partner.datasets.values():
            stored.setdefault(dataset.name, set()).update(c.output_name for c in dataset.contract.columns
                                                          if c.output_name)
    return stored


class _ColumnBasics(TypedDict):
    """The fields every column has, whatever its role; each role adds its own to these."""

    name: str
    role: str
    required: bool
    max_length: int
    label: str | None
    description: str
    value_labels: tuple[tuple[str, str], ...]


class _Checker:
    """Walks the YAML document, building the policy and collecting every issue with its key path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[PolicyIssue] = []

    def fail(self, path: str, problem: str, allowed: str | None = None) -> None:
        self.issues.append(PolicyIssue(self.file, path, problem, allowed))

    # Generic checks --------------------------------------------------------------------------------------

    def mapping(self, node: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(node, dict):
            self.fail(path, f"must be a mapping, found {type(node).__name__}")
            return {}
        for key in node:
            if key not in allowed and not (path == "(root)" and str(key).startswith("x-")):
                self.fail(f"{path}.{key}", "unknown key", ", ".join(allowed))
        for key in required:
            if key not in node:
                self.fail(f"{path}.{key}", "is required")
        return node

    def text(self, node: dict, key: str, path: str, default: str | None = None) -> str:
        value = node.get(key, default)
        if not isinstance(value, str) or not value.strip():
            if key in node or default is None:
                self.fail(f"{path}.{key}", "must be non-empty text")
            return default or ""
        return value

    def choice(self, node: dict, key: str, path: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = node.get(key, default)
        if value not in allowed:
            if key in node or default is None:
                self.fail(f"{path}.{key}", f"{value!r} is not allowed", ", ".join(allowed))
            return default or allowed[0]
        return value

    def integer(self, node: dict, key: str, path: str, default: int | None, low: int = 0, high: int = 10**9) -> int:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(f"{path}.{key}", f"must be a whole number from {low} to {high}")
            return default or low
        return value

    def number(self, node: dict, key: str, path: str) -> float | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{path}.{key}", "must be a number")
            return None
        return float(value)

    def day(self, node: dict, key: str, path: str) -> date | None:
        value = node.get(key)
        if value is None:
            return None
        if not isinstance(value, date):
            self.fail(f"{path}.{key}", "must be a date", "YYYY-MM-DD")
            return None
        return value

    def boolean(self, node: dict, key: str, path: str, default: bool) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}", "must be true or false")
            return default
        return value

    def identifier(self, value: Any, path: str, pattern: re.Pattern[str], what: str) -> bool:
        if not isinstance(value, str) or not pattern.match(value):
            self.fail(path, f"{value!r} is not a valid {what}", pattern.pattern)
            return False
        return True

    # The document ----------------------------------------------------------------------------------------

    def policy(self, document: Any, version: str) -> Policy | None:
        root = self.mapping(document, "(root)", ("programme", "partners", "reports", "extracts"),
                            ("programme", "partners"))
        programme = self.programme(root.get("programme"), "programme")
        partners: dict[str, Partner] = {}
        partner_nodes = self.mapping(root.get("partners", {}), "partners", _keys(root.get("partners")))
        if not partner_nodes:
            self.fail("partners", "at least one partner is required")
        for partner_id, node in partner_nodes.items():
            path = f"partners.{partner_id}"
            if self.identifier(partner_id, path, PARTNER_ID, "partner id (its drop zone is drop-<id>)"):
                partners[partner_id] = self.partner(partner_id, node, path, programme)
        stored = _stored_columns(partners)
        special = {d.name for partner in partners.values() for d in partner.datasets.values() if d.special_category}
        reports = {report.name: report for index, node in enumerate(self.entries(root, "reports", ("name",)))
                   if (report := self.report(node, f"reports[{index}]", stored, special)) is not None}
        extracts = {extract.name: extract for index, node in enumerate(self.entries(root, "extracts", EXTRACT_KEYS))
                    if (extract := self.extract(node, f"extracts[{index}]", stored)) is not None}
        if self.issues:
            return None
        return Policy(self.file, version, programme, partners, reports, extracts)

    def entries(self, root: dict, key: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
        """Reports and extracts are defined fully by their own features; here each needs its named keys."""
        nodes = root.get(key, [])
        if not isinstance(nodes, list):
            self.fail(key, "must be a list")
            return []
        for index, node in enumerate(nodes):
            if not isinstance(node, dict):
                self.fail(f"{key}[{index}]", "must be a mapping")
                continue
            for name in required:
                if name not in node:
                    self.fail(f"{key}[{index}].{name}", "is required")
        return [node for node in nodes if isinstance(node, dict)]

    def names(self, node: dict, key: str, path: str, allowed: set[str], what: str) -> tuple[str, ...]:
        values = node.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.fail(f"{path}.{key}", "must be a list of names")
            return ()
        for value in values:
            if value not in allowed:
                self.fail(f"{path}.{key}", f"{value!r} is not {what}", ", ".join(sorted(allowed)))
        return tuple(values)

    def report(self, node: dict, path: str, stored: dict[str, set[str]], special: set[str]) -> ReportSpec | None:
        keys = ("name", "audience", "kind", "datasets", "dimensions", "measure", "filters", "rule", "service_column",
                "outcome_column", "date_columns", "note", "title", "measure_label")
        self.mapping(node, path, keys, ("name", "audience", "datasets"))
        kind = self.choice(node, "kind", path, REPORT_KINDS, "table")
        datasets = self.names(node, "datasets", path, set(stored), "a dataset of the policy")
        columns = set().union(*(stored.get(d, set()) for d in datasets)) if datasets else set()
        rule = self.rule(node.get("rule", {}), f"{path}.rule", special_category=bool(special & set(datasets)))
        measure, _, measure_column = str(node.get("measure", "people")).partition(":")
        if measure not in MEASURES or (measure in ("sum", "mean", "rate")) != bool(measure_column) or (
                measure == "rate" and not RATE.match(measure_column)):
            self.fail(f"{path}.measure", f"{node.get('measure')!r} is not a measure",
                      "people, rows, sum:<column>, mean:<column>, rate:<column>[-<column>...]/<column>")
        else:
            for name in re.split(r"[-/]", measure_column) if measure_column else ():
                if name not in columns:
                    self.fail(f"{path}.measure", f"{name!r} is not a stored column of the report's datasets")
        dimensions = self.names(node, "dimensions", path, columns, "a stored column of the report's datasets")
        if kind == "table" and not 1 <= len(dimensions) <= 2:
            self.fail(f"{path}.dimensions", "a table report has one or two dimensions")
        filters = node.get("filters", {})
        if not isinstance(filters, dict) or not all(k in columns and isinstance(v, list) for k, v in filters.items()):
            self.fail(f"{path}.filters", "a mapping of stored column to a list of values to keep")
            filters = {}
        date_columns = node.get("date_columns", {})
        if kind == "impact":
            for key in ("service_column", "outcome_column"):
                if node.get(key) not in columns:
                    self.fail(f"{path}.{key}", "an impact report names a stored column of its datasets")
            if not isinstance(date_columns, dict) or set(date_columns) != set(datasets):
                self.fail(f"{path}.date_columns", "name the date column of each of the report's datasets")
                date_columns = {}
        return ReportSpec(
            name=self.text(node, "name", path), audience=self.text(node, "audience", path), kind=kind,
            datasets=datasets, rule=rule, dimensions=dimensions, measure=measure, measure_column=measure_column or None,
            filters={k: tuple(str(v) for v in values) for k, values in filters.items()},
            service_column=node.get("service_column"), outcome_column=node.get("outcome_column"),
            date_columns=dict(date_columns), title=str(node.get("title", "")),
            measure_label=str(node.get("measure_label", "")))

    def rule(self, node: Any, path: str, special_category: bool = False) -> Rule:
        """A report's rule; a report reading special-category data gets the stricter default threshold."""
        node = self.mapping(node, path, ("type", "threshold", "dominance"))
        kind = self.choice(node, "type", path, RULES, "threshold")
        threshold = self.integer(node, "threshold", path, None, 2, 100) if "threshold" in node else None
        if threshold is not None and kind != "threshold":
            self.fail(f"{path}.threshold", f"a {kind} rule has a fixed threshold", "remove it, or use type threshold")
        return Rule(kind, threshold, special_category, self.dominance(node.get("dominance", {}), f"{path}.dominance"))

    def dominance(self, node: Any, path: str) -> Dominance:
        """The (n,k) and p% rules for sums and means, k and p given in percent."""
        node = self.mapping(node, path, ("n", "k", "p"))
        defaults = Dominance()
        return Dominance(self.integer(node, "n", path, defaults.n, 1, 10),
                         self.integer(node, "k", path, round(defaults.k * 100), 1, 100) / 100,
                         self.integer(node, "p", path, round(defaults.p * 100), 0, 100) / 100)

    def extract(self, node: dict, path: str, stored: dict[str, set[str]]) -> ExtractSpec | None:
        self.mapping(node, path, (*EXTRACT_KEYS, *EXTRACT_OPTIONAL_KEYS, "note"), EXTRACT_KEYS)
        datasets = self.names(node, "datasets", path, set(stored), "a dataset of the policy")
        columns = set().union(*(stored.get(d, set()) for d in datasets)) if datasets else set()
        chosen = self.names(node, "columns", path, columns, "a stored column of the extract's datasets")
        quasi = self.names(node, "quasi_identifiers", path, set(chosen), "one of the extract's columns")
        expires = self.day(node, "expires", path)
        if expires is None:
            self.fail(f"{path}.expires", "an extract needs the date it is destroyed", "YYYY-MM-DD")
        k = self.integer(node, "k", path, 5, low=2, high=1000)
        sensitive = self.names(node, "sensitive", path, set(chosen) - set(quasi),
                               "one of the extract's columns that is not a quasi-identifier")
        l_default = 2 if sensitive else 1
        diversity = self.integer(node, "l", path, l_default, low=l_default, high=max(k, l_default))
        if "l" in node and not sensitive:
            self.fail(f"{path}.l", "l-diversity needs the sensitive attributes it applies to", "sensitive: [column]")
        return ExtractSpec(self.text(node, "name", path), self.text(node, "recipient", path), datasets, chosen,
                           quasi, k, expires or date.max, purpose=self.text(node, "purpose", path, ""),
                           sensitive=sensitive, l=diversity,
                           max_suppressed_percent=self.percent(node, "max_suppressed_percent", path, 0.0, 10.0))

    def percent(self, node: dict, key: str, path: str, default: float, high: float) -> float:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            self.fail(f"{path}.{key}", f"must be a percentage from 0 to {high:g}")
            return default
        return float(value)

    def programme(self, node: Any, path: str) -> Programme:
        node = self.mapping(node, path, ("name", "controller", "data_residency", "region", "programme_end",
                                          "limits", "area"), ("name", "controller", "data_residency", "region"))
        residency = self.choice(node, "data_residency", path, tuple(RESIDENCY))
        region = self.choice(node, "region", path, RESIDENCY.get(residency, UK_REGIONS))
        limits = self.mapping(node.get("limits", {}), f"{path}.limits", tuple(DEFAULT_LIMITS))
        area = node.get("area", {})
        if not isinstance(area, dict):
            self.fail(f"{path}.area", "must be a mapping")
            area = {}
        return Programme(
            name=self.text(node, "name", path),
            controller=self.text(node, "controller", path),
            residency=residency,
            region=region,
            programme_end=self.day(node, "programme_end", path),
            limits=Limits(
                max_file_bytes=self.integer(limits, "max_file_mb", f"{path}.limits", 100, 1, 2048) * 1024 * 1024,
                max_line_chars=self.integer(limits, "max_line_chars", f"{path}.limits", 10_000, 100, 1_000_000),
                max_rows=self.integer(limits, "max_rows", f"{path}.limits", 5_000_000, 1, 50_000_000),
                max_link_days=self.integer(limits, "max_link_days", f"{path}.limits", 7, 1, 90),
            ),
            area=area,
        )

    def partner(self, partner_id: str, node: Any, path: str, programme: Programme) -> Partner:
        node = self.mapping(node, path, ("name", "kind", "datasets"), ("name", "kind", "datasets"))
        datasets: dict[str, Dataset] = {}
        dataset_nodes = self.mapping(node.get("datasets", {}), f"{path}.datasets", _keys(node.get("datasets")))
        if not dataset_nodes:
            self.fail(f"{path}.datasets", "at least one dataset is required")
        for name, dataset_node in dataset_nodes.items():
            dataset_path = f"{path}.datasets.{name}"
            if self.identifier(name, dataset_path, DATASET_ID, "dataset name (it is the folder partners upload to)"):
                datasets[name] = self.dataset(name, partner_id, dataset_node, dataset_path, programme)
        return Partner(partner_id, self.text(node, "name", path), self.choice(node, "kind", path, PARTNER_KINDS),
                       datasets)

    def dataset(self, name: str, partner: str, node: Any, path: str, programme: Programme) -> Dataset:
        node = self.mapping(node, path, ("description", "basis", "special_category", "retention", "columns",
                                          "unexpected_columns", "invalid_rows", "row_key"),
                            ("basis", "retention", "columns"))
        columns = self.columns(node.get("columns"), f"{path}.columns")
        contract = Contract(
            columns=tuple(columns),
            unexpected_columns=self.choice(node, "unexpected_columns", path, UNEXPECTED_COLUMN_ACTIONS, "reject_file"),
            invalid_rows=self.choice(node, "invalid_rows", path, INVALID_ROW_ACTIONS, "drop_row"),
        )
        basis = self.choice(node, "basis", path, BASES)
        roles = [c.role for c in columns]
        if basis == "consent" and "consent" not in roles:
            self.fail(f"{path}.columns", "a consent-based dataset needs a column with role consent")
        if roles.count("consent") > 1:
            self.fail(f"{path}.columns", "at most one column may have role consent")
        if "identifier" not in roles:
            self.fail(f"{path}.columns", "at least one column must have role identifier")
        retention = self.retention(node.get("retention"), f"{path}.retention", contract, programme)
        row_key = self.row_key(node, f"{path}.row_key", contract) if "row_key" in node else ()
        return Dataset(name, partner, basis, contract, retention,
                       self.boolean(node, "special_category", path, False), str(node.get("description", "")),
                       row_key)

    def row_key(self, node: dict, path: str, contract: Contract) -> tuple[str, ...]:
        """What makes two rows of this dataset the same row: stored columns, at least one identifying a person."""
        names = node["row_key"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.fail(path, "must be a list of this dataset's column names",
                      "for example [nhs_number, visit_date]: a person identifier and what tells their rows apart")
            return ()
        if len(set(names)) != len(names):
            self.fail(path, "names a column twice", "each column once")
        ok = True
        for index, name in enumerate(names):
            column = contract.column(name)
            where = f"{path}[{index}]"
            if column is None:
                self.fail(where, f"{name!r} is not a column of this dataset",
                          ", ".join(c.name for c in contract.columns if c.role in ("identifier", "attribute")))
                ok = False
            elif column.role not in ("identifier", "attribute"):
                self.fail(where, f"{name!r} has role {column.role}, which is not stored as sent",
                          "an identifier (compared by its pseudonym) or an attribute")
                ok = False
            elif not column.required:
                self.fail(where, f"{name!r} is optional, so a row without it could not be matched",
                          f"a required column, or remove required: false from columns.{name}")
                ok = False
        if ok and not any(contract.column(name).names_a_person for name in names):  # type: ignore[union-attr]
            self.fail(path, "names no identifier of a person, so two people's rows could replace each other",
                      "add a person identifier (not a group one such as a family reference)")
            ok = False
        return tuple(names) if ok else ()

    def columns(self, node: Any, path: str) -> list[Column]:
        nodes = self.mapping(node, path, _keys(node))
        columns = [self.column(name, spec, f"{path}.{name}") for name, spec in nodes.items()
                   if self.identifier(name, f"{path}.{name}", COLUMN_NAME, "column name (lower case, digits, _)")]
        names = {c.name for c in columns}
        for column in columns:
            if column.at is not None and column.at not in names:
                self.fail(f"{path}.{column.name}.at", f"names no column of this dataset: {column.at!r}")
        outputs = [c.output_name for c in columns if c.output_name]
        for duplicate in {o for o in outputs if outputs.count(o) > 1}:
            self.fail(path, f"two columns would both be stored as {duplicate!r}")
        return columns

    def column(self, name: str, node: Any, path: str) -> Column:
        keys = ("role", "type", "required", "generalise", "at", "values", "min", "max", "step", "max_length",
                "identifies", "match", "note", "label", "description", "labels")
        node = self.mapping(node, path, keys, ("role",))
        role = self.choice(node, "role", path, ROLES)
        common: _ColumnBasics = {
            "name": name, "role": role, "required": self.boolean(node, "required", path, True),
            "max_length": self.integer(node, "max_length", path, DEFAULT_MAX_LENGTH, 1, 10_000),
            "label": self.text(node, "label", path, "") or None,
            "description": self.text(node, "description", path, ""),
            "value_labels": self.labels(node, path)}
        if role == "identifier":
            return Column(**common, id_type=self.choice(node, "type", path, BASE_TYPES),
                          identifies=self.choice(node, "identifies", path, IDENTIFIES, "person"))
        self.refuse(node, "identifies", path, "only an identifier says what it identifies")
        if role == "quasi":
            generalisation = self.choice(node, "generalise", path, GENERALISATIONS)
            if generalisation == "age_in_months" and "at" not in node:
                self.fail(f"{path}.at", "age_in_months needs the date column the age is measured at")
            postcode = generalisation.startswith("postcode")
            return Column(**common, generalise=generalisation, at=node.get("at"),
                          match=self.match(node, path, ("postcode",) if postcode else ("date_of_birth",)))
        if role == "direct":
            return Column(**common, match=self.match(node, path, ("first_name", "surname", "full_name", "name_tokens")))
        self.refuse(node, "match", path, "only direct and quasi columns are matched on")
        if role == "attribute":
            return self.attribute(node, path, common)
        return Column(**common)

    def match(self, node: dict, path: str, allowed: tuple[str, ...]) -> str | None:
        """What a direct or quasi column holds for the person index: a name, the date of birth, the postcode."""
        if "match" not in node:
            return None
        value = self.choice(node, "match", path, MATCHES)
        if value not in allowed:
            self.fail(f"{path}.match", f"{value!r} does not fit this column", ", ".join(allowed))
        return value

    def labels(self, node: dict, path: str) -> tuple[tuple[str, str], ...]:
        """`labels: {K: SEN support}`: how people read a coded value."""
        labels = node.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            self.fail(f"{path}.labels", "a mapping of stored value to the label people read")
            return ()
        return tuple((str(code), text) for code, text in labels.items())

    def refuse(self, node: dict, key: str, path: str, why: str) -> None:
        if key in node:
            self.fail(f"{path}.{key}", why)

    def attribute(self, node: dict, path: str, common: _ColumnBasics) -> Column:
        kind = self.choice(node, "type", path, ATTRIBUTE_TYPES)
        values = node.get("values")
        if values is not None and (kind != "string" or not isinstance(values, list) or not values):
            self.fail(f"{path}.values", "a non-empty list of allowed values, for type string only")
            values = None
        minimum, maximum = self.number(node, "min", path), self.number(node, "max", path)
        if kind in ("integer", "number") and (minimum is None or maximum is None or minimum > maximum):
            self.fail(path, "numbers need min and max, with min <= max")
        step = node.get("step")
        if step is not None and (kind != "integer" or not isinstance(step, int) or step < 1):
            self.fail(f"{path}.step", "a positive whole number, for type integer only")
            step = None
        return Column(**common, type=kind, values=tuple(str(v) for v in values) if values else None,
                      minimum=minimum, maximum=maximum, step=step)

    def retention(self, node: Any, path: str, contract: Contract, programme: Programme) -> RetentionRule:
        node = self.mapping(node, path, ("anchor", "column", "years", "months", "cap", "note"), ("anchor",))
        anchor = self.choice(node, "anchor", path, ANCHORS)
        offset = Offset(self.integer(node, "years", path, 0, 0, 150), self.integer(node, "months", path, 0, 0, 1800))
        column = node.get("column")
        if anchor == "date_of_birth" and column is None:
            births = [c.name for c in contract.columns if c.role == "quasi" and c.generalise in
                      ("birth_month", "age_in_months")]
            column = births[0] if len(births) == 1 else None
            if column is None:
                self.fail(f"{path}.column", "name the date of birth column the anchor reads")
        elif anchor == "column":
            dated = contract.column(column) if isinstance(column, str) else None
            if dated is None or dated.type != "date":
                self.fail(f"{path}.column", "must name a date attribute of this dataset")
        if anchor in ("date_of_birth", "column") and isinstance(column, str):
            spec = contract.column(column)
            if spec is not None and not spec.required:
                self.fail(f"{path}.column", "the anchor column must be required, or rows could not be planned")
        cap = None
        if "cap" in node:
            cap_node = self.mapping(node["cap"], f"{path}.cap", ("years", "months"))
            cap = Offset(self.integer(cap_node, "years", f"{path}.cap", 0, 0, 150),
                         self.integer(cap_node, "months", f"{path}.cap", 0, 0, 1800))
        if (anchor == "programme_end" or cap) and programme.programme_end is None:
            self.fail(f"{path}.anchor", "needs programme.programme_end")
        return RetentionRule(anchor, offset, column if anchor in ("date_of_birth", "column") else None, cap)
