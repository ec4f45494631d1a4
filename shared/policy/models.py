"""The programme policy's document, as pydantic models: what each key may hold, and the rules within one dataset.

The loader (`shared.policy.loader`) validates a policy's YAML with these models, adds the rules that span the
whole policy (a report's columns exist, retention anchored on programme end needs the end date), and builds the
value types the rest of the platform uses. `python -m shared.policy.schema` publishes the JSON Schema generated from
these models, so an operator's editor checks a policy while it is typed.

Rules raise `PydanticCustomError("policy", ...)` with an `allowed` hint in the context: the loader turns every error
into a `PolicyIssue` naming the file, the key path, what is wrong and what is allowed. No message carries the
value that was found.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.policy.contracts import DEFAULT_MAX_LENGTH, Column

PARTNER_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
DATASET_ID = PARTNER_ID
COLUMN_NAME = r"^[a-z][a-z0-9_]{0,62}$"
NON_BLANK = r"\S"
MEASURE = (r"^(people|rows|(sum|mean):[a-z][a-z0-9_]{0,62}"
           r"|rate:[a-z][a-z0-9_]{0,62}(-[a-z][a-z0-9_]{0,62})*/[a-z][a-z0-9_]{0,62})$")
"""`rate:<a>[-<b>...]/<c>` is 100 x the sum of a (less the sums of b ...) over the sum of c: a percentage of a
total, as attendance is of possible sessions (`rate:sessions_possible-sessions_absent/sessions_possible`)."""
PATTERN_HINTS = {
    PARTNER_ID: ("is not a valid name for a partner (its drop zone is drop-<id>) or a dataset (its folder)",
                 "lower case letters, digits and single hyphens"),
    COLUMN_NAME: ("is not a valid column name", "a lower case letter, then lower case letters, digits and _"),
    NON_BLANK: ("must be non-empty text", "text that is not blank"),
    MEASURE: ("is not a measure", "people, rows, sum:<column>, mean:<column>, rate:<column>[-<column>...]/<column>"),
}
"""How an operator reads a pattern the value did not match: what is wrong, and what is allowed."""

UK_REGIONS = ("uksouth", "ukwest")
EU_REGIONS = (
    "westeurope", "northeurope", "francecentral", "francesouth", "germanywestcentral", "germanynorth",
    "swedencentral", "swedensouth", "italynorth", "polandcentral", "spaincentral", "belgiumcentral",
)
RESIDENCY = {"UK": UK_REGIONS, "EU": EU_REGIONS}

PartnerId = Annotated[str, StringConstraints(pattern=PARTNER_ID, max_length=58)]
"""A storage container is named drop-<id>, and container names have at most 63 characters."""
DatasetId = Annotated[str, StringConstraints(pattern=DATASET_ID, max_length=63)]
ColumnName = Annotated[str, StringConstraints(pattern=COLUMN_NAME)]
Text = Annotated[str, StringConstraints(pattern=NON_BLANK)]
Region = Literal["uksouth", "ukwest", "westeurope", "northeurope", "francecentral", "francesouth",
                 "germanywestcentral", "germanynorth", "swedencentral", "swedensouth", "italynorth",
                 "polandcentral", "spaincentral", "belgiumcentral"]
Basis = Literal["consent", "legitimate_interest", "public_task", "legal_obligation"]
PartnerKind = Literal["school", "nursery", "nhs_trust", "council", "charity", "other"]
IdType = Literal["nhs_number", "upn", "partner_ref", "partner_pseudonym", "nhs_number_token"]
Generalisation = Literal["postcode_district", "postcode_sector", "birth_month", "age_in_months"]
AttributeType = Literal["string", "integer", "number", "date", "boolean"]
Anchor = Literal["received", "date_of_birth", "programme_end", "column"]
DisclosureRule = Literal["threshold", "hospital", "ons-10-5"]
ReportKind = Literal["table", "impact"]


def problem(message: str, allowed: str | None = None) -> PydanticCustomError:
    """A rule's error: `message` says what is wrong (never the value found), `allowed` what would be right."""
    return PydanticCustomError("policy", message.replace("{", "{{").replace("}", "}}"), {"allowed": allowed})


def raise_problems(problems: list[tuple[tuple[str | int, ...], PydanticCustomError]]) -> None:
    """Raise several rule errors at once, each at its own key path below the model being validated."""
    if problems:
        raise ValidationError.from_exception_data("policy", [
            InitErrorDetails(type=error, loc=loc, input=None) for loc, error in problems])


SHAPE_ONLY = "shape_only"
"""Validation context key: check a dataset's shape but not its references (the loader's salvage of a broken
policy, so that reports on a dataset with a wrong reference are still judged)."""


class _Strict(BaseModel):
    """YAML types as written (no "yes" for true, no "5" for 5), and no key the platform does not know."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _ColumnBase(_Strict):
    required: bool = Field(default=True, description="The header must have the column and every row a value.")
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1, le=10_000, description="The longest value accepted.")
    label: Text | None = Field(default=None, description="What people call the column (`SEN provision`).")
    description: str = Field(default="", description="What the column means, for people reading the data.")
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="How people read coded values: code -> label (`K: SEN support`).")
    note: str | None = None


class IdentifierColumn(_ColumnBase):
    """Pseudonymised under the platform key; stored as `<name>_pseudonym`."""

    role: Literal["identifier"]
    type: IdType
    identifies: Literal["person", "group"] = Field(
        default="person", description="One person, or a group (a family reference) that never joins two people.")


class DirectColumn(_ColumnBase):
    """A name, address, phone number or email: never stored; a `match` column becomes match keys first."""

    role: Literal["direct"]
    match: Literal["first_name", "surname", "full_name", "name_tokens"] | None = None


class QuasiColumn(_ColumnBase):
    """Generalised before it is stored: a postcode to district or sector, a birth date to a month or an age."""

    role: Literal["quasi"]
    generalise: Generalisation
    at: ColumnName | None = Field(default=None, validate_default=True,
                                  description="For age_in_months: the date column the age is measured at.")
    match: Literal["postcode", "date_of_birth"] | None = Field(default=None, validate_default=True)

    @field_validator("at")
    @classmethod
    def _age_needs_a_date(cls, at: str | None, info: ValidationInfo) -> str | None:
        if at is None and info.data.get("generalise") == "age_in_months":
            raise problem("age_in_months needs the date column the age is measured at", "a date column's name")
        return at

    @field_validator("match")
    @classmethod
    def _match_fits(cls, match: str | None, info: ValidationInfo) -> str | None:
        generalised = info.data.get("generalise")
        fits = "postcode" if str(generalised).startswith("postcode") else "date_of_birth"
        if match is not None and generalised is not None and match != fits:
            raise problem("does not fit this column's generalisation", fits)
        return match


class AttributeColumn(_ColumnBase):
    """Kept as sent, checked against its type and its allowed values or range."""

    role: Literal["attribute"]
    type: AttributeType
    values: list[str] | None = Field(default=None, min_length=1, description="For type string: the values allowed.")
    min: float | None = None
    max: float | None = None
    step: int | None = Field(default=None, ge=1, description="For type integer: values are multiples of it.")

    @field_validator("values")
    @classmethod
    def _values_for_strings(cls, values: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if values is not None and info.data.get("type", "string") != "string":
            raise problem("a list of allowed values is for type string only", "remove values, or use type string")
        return values

    @field_validator("step")
    @classmethod
    def _step_for_integers(cls, step: int | None, info: ValidationInfo) -> int | None:
        if step is not None and info.data.get("type", "integer") != "integer":
            raise problem("a step is for type integer only", "remove step, or use type integer")
        return step

    @model_validator(mode="after")
    def _numbers_have_a_range(self) -> AttributeColumn:
        if self.type in ("integer", "number") and (self.min is None or self.max is None or self.min > self.max):
            raise problem("numbers need min and max, with min <= max", "for example {min: 0, max: 60}")
        return self

    @model_validator(mode="after")
    def _labels_name_allowed_values(self) -> AttributeColumn:
        if self.values is not None and not set(self.labels) <= set(self.values):
            raise_problems([(("labels",), problem("labels a code the column does not allow",
                                                  ", ".join(self.values)))])
        return self


class ConsentColumn(_ColumnBase):
    """The row's opt-in flag: rows without a yes are left out; never stored."""

    role: Literal["consent"]


ColumnSpec = Annotated[IdentifierColumn | DirectColumn | QuasiColumn | AttributeColumn | ConsentColumn,
                       Field(discriminator="role")]


class OffsetSpec(_Strict):
    years: int = Field(default=0, ge=0, le=150)
    months: int = Field(default=0, ge=0, le=1800)


class RetentionSpec(_Strict):
    """The purge month: the anchor plus the offset, at most `cap` after programme end, to the month end."""

    anchor: Anchor
    column: ColumnName | None = Field(
        default=None, description="The date column a date_of_birth or column anchor reads.")
    years: int = Field(default=0, ge=0, le=150)
    months: int = Field(default=0, ge=0, le=1800)
    cap: OffsetSpec | None = Field(default=None, description="At most this long after programme end.")
    note: str | None = None


class DatasetSpec(_Strict):
    """One dataset a partner uploads (the folder of its drop zone): its data contract, basis and retention."""

    label: Text | None = Field(default=None, description="The dataset's name as people read it.")
    description: str = ""
    basis: Basis
    special_category: bool = False
    retention: RetentionSpec
    unexpected_columns: Literal["reject_file", "drop"] = "reject_file"
    invalid_rows: Literal["drop_row", "reject_file"] = "drop_row"
    row_key: list[str] | None = Field(default=None, description=(
        "Columns that make a row the same row: a row sent again with them replaces the stored copy."))
    columns: dict[ColumnName, ColumnSpec]

    @field_validator("columns", mode="wrap")
    @classmethod
    def _roles(cls, columns: Any, handler: Any, info: ValidationInfo) -> Any:
        """The roles a dataset needs, judged from each column's role even where another key of it is wrong."""
        try:
            checked, errors = handler(columns), []
        except ValidationError as failure:
            checked, errors = None, [InitErrorDetails(
                type=PydanticCustomError(e["type"], e["msg"].replace("{", "{{").replace("}", "}}"), e.get("ctx")),
                loc=e["loc"], input=None) for e in failure.errors()]
        roles = [spec.get("role") for spec in columns.values() if isinstance(spec, dict)] \
            if isinstance(columns, dict) else []
        errors += [InitErrorDetails(type=error, loc=(), input=None)
                   for error in role_problems(info.data.get("basis"), roles)]
        if errors:
            raise ValidationError.from_exception_data("policy", errors)
        return checked

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> DatasetSpec:
        if (info.context or {}).get(SHAPE_ONLY):
            return self
        contract = {name: to_column(name, spec) for name, spec in self.columns.items()}
        raise_problems([*column_reference_problems(contract), *row_key_problems(self.row_key, contract),
                        *retention_column_problems(self.retention, contract)])
        return self


class PartnerSpec(_Strict):
    name: Text
    kind: PartnerKind
    datasets: dict[DatasetId, DatasetSpec] = Field(min_length=1)


class LimitsSpec(_Strict):
    max_file_mb: int = Field(default=100, ge=1, le=2048)
    max_line_chars: int = Field(default=10_000, ge=100, le=1_000_000)
    max_rows: int = Field(default=5_000_000, ge=1, le=50_000_000)
    max_link_days: int = Field(default=7, ge=1, le=90, description="How long a partner's upload link may stay valid.")


class ProgrammeSpec(_Strict):
    name: Text
    controller: Text
    data_residency: Literal["UK", "EU"]
    region: Region = Field(description="An Azure region of the data residency: UK uksouth or ukwest.")
    programme_end: date | None = None
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    area: dict[str, Any] = Field(default_factory=dict, description="Hints for the synthetic data generator.")

    @field_validator("region")
    @classmethod
    def _region_of_residency(cls, region: str, info: ValidationInfo) -> str:
        regions = RESIDENCY.get(info.data.get("data_residency", ""), ())
        if regions and region not in regions:
            raise problem("is not a region of the programme's data residency", ", ".join(regions))
        return region


class DominanceSpec(_Strict):
    """The (n,k) and p% rules for sums and means, k and p in percent (ACRO's defaults)."""

    n: int = Field(default=2, ge=1, le=10)
    k: int = Field(default=90, ge=1, le=100)
    p: int = Field(default=10, ge=0, le=100)


class RuleSpec(_Strict):
    type: DisclosureRule = "threshold"
    threshold: int | None = Field(default=None, ge=2, le=100, description=(
        "For type threshold: the smallest count published (default 10, 20 for special-category data)."))
    dominance: DominanceSpec = Field(default_factory=DominanceSpec)

    @field_validator("threshold")
    @classmethod
    def _only_for_threshold_rules(cls, threshold: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("type")
        if threshold is not None and kind not in (None, "threshold"):
            raise problem(f"a {kind} rule has a fixed threshold", "remove it, or use type threshold")
        return threshold


class ReportSpecModel(_Strict):
    """An anonymised report: `table` counts by one or two stored columns; `impact` compares outcome scores."""

    name: Text
    audience: Text
    kind: ReportKind = "table"
    datasets: list[str] = Field(min_length=1)
    dimensions: list[str] = Field(default_factory=list)
    measure: Annotated[str, StringConstraints(pattern=MEASURE)] = "people"
    filters: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict, description="Stored column -> the values to keep.")
    rule: RuleSpec = Field(default_factory=RuleSpec)
    service_column: str | None = None
    outcome_column: str | None = None
    date_columns: dict[str, str] = Field(default_factory=dict,
                                         description="For impact reports: each dataset's date column.")
    title: str = Field(default="", description="The report's heading and its chart's title, as its audience reads it.")
    measure_label: str = Field(default="", description="What the measure shows, with its unit.")
    note: str | None = None


class ExtractSpecModel(_Strict):
    """A pseudonymised research extract for one recipient, k-anonymous on its quasi-identifiers."""

    name: Text
    recipient: Text
    datasets: list[str] = Field(min_length=1)
    columns: list[str] = Field(min_length=1)
    quasi_identifiers: list[str]
    k: int = Field(ge=2, le=1000)
    expires: date = Field(description="The date the extract is destroyed.")
    purpose: str = Field(default="", description="What the recipient agreed to use the extract for.")
    sensitive: list[str] = Field(default_factory=list, description=(
        "Sensitive attributes (extract columns that are not quasi-identifiers): every published group shows at "
        "least l distinct values of each."))
    l: int | None = Field(  # noqa: E741 - the l of l-diversity
        default=None, ge=1, description="l-diversity: from 2 (the default with sensitive) to k.")
    max_suppressed_percent: int | float = Field(
        default=0, json_schema_extra={"minimum": 0, "maximum": 10},
        description="The most people whose rows may be suppressed, as a percentage of everyone in the extract.")
    note: str | None = None

    @field_validator("sensitive")
    @classmethod
    def _sensitive_are_agreed_columns(cls, sensitive: list[str], info: ValidationInfo) -> list[str]:
        """Sensitive attributes are columns of the extract that are not quasi-identifiers."""
        candidates = sorted(set(info.data.get("columns", [])) - set(info.data.get("quasi_identifiers", [])))
        raise_problems([((), problem(f"{name!r} is not one of the extract's columns that is not a quasi-identifier",
                                     ", ".join(candidates))) for name in sensitive if name not in candidates])
        return sensitive

    @field_validator("l")
    @classmethod
    def _l_needs_sensitive_and_k(cls, diversity: int | None, info: ValidationInfo) -> int | None:
        if diversity is None:
            return None
        if "sensitive" in info.data and not info.data["sensitive"]:  # absent from data: given, but wrong
            raise problem("l-diversity needs the sensitive attributes it applies to", "sensitive: [column]")
        most = max(info.data.get("k", diversity), 2)
        if not 2 <= diversity <= most:
            raise problem(f"must be a whole number from 2 to {most}", "at most k distinct values in a group")
        return diversity

    @field_validator("max_suppressed_percent")
    @classmethod
    def _a_percentage(cls, percent: float) -> float:
        if not 0 <= percent <= 10:
            raise problem("must be a percentage from 0 to 10", "a number from 0 to 10")
        return percent


class PolicyDocument(_Strict):
    """A programme policy: one YAML file per deployment. Top-level keys starting x- hold YAML anchors."""

    model_config = ConfigDict(title="Programme policy", json_schema_extra={"patternProperties": {"^x-": {}}})

    programme: ProgrammeSpec
    partners: dict[PartnerId, PartnerSpec] = Field(min_length=1)
    reports: list[ReportSpecModel] = Field(default_factory=list)
    extracts: list[ExtractSpecModel] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _without_anchors(cls, document: Any) -> Any:
        if isinstance(document, dict):
            return {key: value for key, value in document.items() if not str(key).startswith("x-")}
        return document


# Rules within one dataset ------------------------------------------------------------------------------------


def to_column(name: str, spec: IdentifierColumn | DirectColumn | QuasiColumn | AttributeColumn | ConsentColumn
              ) -> Column:
    """The value type ingest checks rows with, from a validated column."""
    common: dict[str, Any] = {
        "name": name, "role": spec.role, "required": spec.required, "max_length": spec.max_length,
        "label": spec.label, "description": spec.description, "value_labels": tuple(spec.labels.items())}
    if isinstance(spec, IdentifierColumn):
        return Column(**common, id_type=spec.type, identifies=spec.identifies)
    if isinstance(spec, DirectColumn):
        return Column(**common, match=spec.match)
    if isinstance(spec, QuasiColumn):
        return Column(**common, generalise=spec.generalise, at=spec.at, match=spec.match)
    if isinstance(spec, AttributeColumn):
        return Column(**common, type=spec.type, values=tuple(spec.values) if spec.values else None,
                      minimum=spec.min, maximum=spec.max, step=spec.step)
    return Column(**common)


def role_problems(basis: object, roles: list[object]) -> list[PydanticCustomError]:
    found = []
    if "identifier" not in roles:
        found.append(problem("at least one column must have role identifier", "add {role: identifier, type: ...}"))
    if roles.count("consent") > 1:
        found.append(problem("at most one column may have role consent", "one consent column"))
    if basis == "consent" and "consent" not in roles:
        found.append(problem("a consent-based dataset needs a column with role consent", "add {role: consent}"))
    return found


Problems = list[tuple[tuple[str | int, ...], PydanticCustomError]]


def column_reference_problems(contract: dict[str, Column]) -> Problems:
    found: Problems = []
    for column in contract.values():
        if column.at is not None and column.at not in contract:
            found.append((("columns", column.name, "at"), problem("names no column of this dataset",
                                                                   ", ".join(contract))))
    outputs = [c.output_name for c in contract.values() if c.output_name]
    for duplicate in sorted({o for o in outputs if outputs.count(o) > 1}):
        found.append((("columns",), problem(f"two columns would both be stored as {duplicate}",
                                            "rename one of them")))
    return found


def row_key_problems(row_key: list[str] | None, contract: dict[str, Column]) -> Problems:
    """What makes two rows of this dataset the same row: stored columns, at least one identifying a person."""
    if row_key is None:
        return []
    if not row_key:
        return [(("row_key",), problem("must be a list of this dataset's column names",
                                       "for example [nhs_number, visit_date]: a person identifier and what tells "
                                       "their rows apart"))]
    found: Problems = []
    if len(set(row_key)) != len(row_key):
        found.append((("row_key",), problem("names a column twice", "each column once")))
    for index, name in enumerate(row_key):
        column, where = contract.get(name), ("row_key", index)
        if column is None:
            found.append((where, problem(f"{name!r} is not a column of this dataset", ", ".join(
                c.name for c in contract.values() if c.role in ("identifier", "attribute")))))
        elif column.role not in ("identifier", "attribute"):
            found.append((where, problem(f"{name!r} has role {column.role}, which is not stored as sent",
                                         "an identifier (compared by its pseudonym) or an attribute")))
        elif not column.required:
            found.append((where, problem(f"{name!r} is optional, so a row without it could not be matched",
                                         f"a required column, or remove required: false from columns.{name}")))
    if not found and not any(contract[name].names_a_person for name in row_key):
        found.append((("row_key",), problem(
            "names no identifier of a person, so two people's rows could replace each other",
            "add a person identifier (not a group one such as a family reference)")))
    return found


def birth_column(retention: RetentionSpec, contract: dict[str, Column]) -> str | None:
    """The date column a retention rule reads: named, or the dataset's one birth-date column."""
    if retention.column is not None or retention.anchor != "date_of_birth":
        return retention.column
    births = [c.name for c in contract.values() if c.role == "quasi" and c.generalise in
              ("birth_month", "age_in_months")]
    return births[0] if len(births) == 1 else None


def retention_column_problems(retention: RetentionSpec, contract: dict[str, Column]) -> Problems:
    if retention.anchor not in ("date_of_birth", "column"):
        return []
    where = ("retention", "column")
    name = birth_column(retention, contract)
    if name is None and retention.anchor == "column":
        dates = [c.name for c in contract.values() if c.type == "date"]
        return [(where, problem("must name a date attribute of this dataset", ", ".join(dates) or None))]
    if name is None:
        return [(where, problem("name the date of birth column the anchor reads", ", ".join(contract)))]
    column = contract.get(name)
    if retention.anchor == "date_of_birth" and column is None:
        return [(where, problem("names no column of this dataset", ", ".join(contract)))]
    if retention.anchor == "column" and (column is None or column.type != "date"):
        dates = [c.name for c in contract.values() if c.type == "date"]
        return [(where, problem("must name a date attribute of this dataset", ", ".join(dates) or None))]
    if column is not None and not column.required:
        return [(where, problem("the anchor column must be required, or rows could not be planned",
                                f"remove required: false from columns.{name}"))]
    return []
