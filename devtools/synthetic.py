"""Synthetic partner files for any programme policy: realistic, reproducible, and nobody's real data.

Values follow each column of the data contract: valid NHS numbers (modulus 11) and UPNs (check letter, the
programme's LA number), postcodes in the programme's area, DfE ethnicity codes, ASQ-3 scores, session counts,
consent flags, names and addresses for the columns the platform must drop. A share of rows can be made invalid
on purpose (a wrong check digit, a malformed postcode or date, a number out of range). Names come from short
lists, telephone numbers from Ofcom's drama range and email addresses from example.org.
"""

from __future__ import annotations

import csv
import io
import random
import string
from dataclasses import dataclass, field
from datetime import date, timedelta

from stdnum.gb import nhs, upn

from shared.policy.contracts import Column
from shared.policy.loader import Dataset, Policy

FIRST_NAMES = ["Amara", "Oliver", "Zainab", "Jack", "Maya", "Kwame", "Isla", "Mohammed", "Freya", "Tomasz",
               "Aisha", "Leo", "Chloe", "Dev", "Grace", "Yusuf", "Ruby", "Oscar", "Hana", "Noah"]
LAST_NAMES = ["Okafor", "Smith", "Khan", "Jones", "Nowak", "Williams", "Ahmed", "Brown", "Mensah", "Taylor",
              "Patel", "Davies", "Hussain", "Evans", "Kowalski", "Walker", "Begum", "Wright", "Osei", "Green"]
STREETS = ["Acre Lane", "Railton Road", "Brixton Hill", "Stockwell Park Road", "Tulse Hill", "Loughborough Road",
           "Hanley Road", "Church Street", "Victoria Road", "Station Road"]
FREE_TEXT = {
    "language": ["English", "Polish", "Urdu", "Arabic", "Somali", "Portuguese", "Bengali"],
    "nationality": ["British", "Irish", "Polish", "Nigerian", "Pakistani", "Portuguese"],
    "religion": ["none", "Christian", "Muslim", "Hindu", "Jewish", "Sikh", "not stated"],
    "country_of_birth": ["United Kingdom", "Ireland", "Poland", "Nigeria", "Pakistan", "Somalia"],
}
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass
class SyntheticFile:
    partner: str
    dataset: str
    name: str
    content: bytes
    header: list[str]
    rows: list[dict[str, str]]
    """The raw values written, so a test can look for any of them in storage."""
    invalid_rows: set[int] = field(default_factory=set)
    """Spreadsheet row numbers (header = 1) made invalid on purpose."""

    @property
    def blob_name(self) -> str:
        return f"{self.dataset}/{self.name}"


def nhs_number(rng: random.Random) -> str:
    while True:
        candidate = "".join(rng.choice(string.digits) for _ in range(9))
        for check in string.digits:
            if nhs.is_valid(candidate + check):
                return candidate + check


def wrong_check_digit(valid: str) -> str:
    return valid[:-1] + str((int(valid[-1]) + 1) % 10)


def unique_pupil_number(rng: random.Random, la_number: int) -> str:
    body = f"{la_number:03d}{rng.randint(2000, 7999):04d}{rng.randint(10, 25):02d}{rng.randint(0, 999):03d}"
    return upn.calc_check_digit(body) + body


def wrong_check_letter(valid: str) -> str:
    alphabet = "ABCDEFGHJKLMNPQRTUVWXYZ"
    return alphabet[(alphabet.index(valid[0]) + 1) % len(alphabet)] + valid[1:]


SEN_SHARES = {"N": 0.83, "K": 0.13, "E": 0.04}
"""England's pupils by SEN provision (DfE, Special educational needs in England, 2024: roughly)."""
ABSENCE_RATES = {"N": 0.06, "K": 0.09, "E": 0.11}
"""Overall absence rate by SEN provision, roughly as DfE's pupil absence statistics show it."""


class _Generator:
    def __init__(self, policy: Policy, dataset: Dataset, seed: int, today: date) -> None:
        self.policy, self.dataset = policy, dataset
        self.rng = random.Random(seed)
        self.today = today
        area = policy.programme.area
        self.districts = area.get("postcode_districts") or ["SW9"]
        self.la_number = int(area.get("la_number") or 208)
        self.ages = area.get("child_ages") or [0, 5]

    def row(self) -> dict[str, str]:
        values: dict[str, str] = {}
        event = self.today - timedelta(days=self.rng.randint(1, 365))
        for column in self.dataset.contract.columns:
            values[column.name] = self.value(column, event)
        for column in self.dataset.contract.columns:  # an age is measured at its event: birth comes first
            if column.role == "quasi" and column.generalise in ("birth_month", "age_in_months"):
                anchor = event
                if column.at and values.get(column.at):
                    anchor = date.fromisoformat(values[column.at])
                years = self.rng.uniform(self.ages[0], self.ages[1] + 0.99)
                values[column.name] = (anchor - timedelta(days=int(years * 365.25) + 1)).isoformat()
        if "sessions_possible" in values and "sessions_absent" in values:
            self.attendance(values)
        return values

    def attendance(self, values: dict[str, str]) -> None:
        """A school year's half-day sessions, and absences at the rate pupils with that SEN provision have."""
        rng = self.rng
        if "sen_provision" in values:
            values["sen_provision"] = rng.choices(list(SEN_SHARES), weights=list(SEN_SHARES.values()))[0]
        possible = rng.randint(300, 330)
        rate = ABSENCE_RATES.get(values.get("sen_provision", "N"), 0.07)
        values["sessions_possible"] = str(possible)
        values["sessions_absent"] = str(min(possible, max(0, round(rng.gauss(rate, 0.04) * possible))))

    def value(self, column: Column, event: date) -> str:
        rng = self.rng
        if column.role == "identifier":
            if column.id_type == "nhs_number":
                return nhs_number(rng)
            if column.id_type == "upn":
                return unique_pupil_number(rng, self.la_number)
            if column.id_type in ("partner_pseudonym", "nhs_number_token"):
                return "".join(rng.choice("0123456789abcdef") for _ in range(32))
            return f"{column.name[:2].upper()}-{rng.randint(100000, 999999)}"
        if column.role == "direct" and column.match == "name_tokens":
            return self.name_tokens()
        if column.role == "direct":
            return self.direct(column.name)
        if column.role == "consent":
            return "Y" if rng.random() < 0.9 else "N"
        if column.role == "quasi" and column.generalise in ("postcode_district", "postcode_sector"):
            unit = rng.choice(_UNIT_LETTERS) + rng.choice(_UNIT_LETTERS)
            return f"{rng.choice(self.districts)} {rng.randint(0, 9)}{unit}"
        if column.role == "quasi":
            return ""  # filled in by row(), after the event dates are known
        return self.attribute(column, event)

    def name_tokens(self) -> str:
        """A name as a trust's source tool writes it: tokens in the tool's form, of nobody's name."""
        first, form, surname, part = ("".join(self.rng.choice("0123456789abcdef") for _ in range(32))
                                      for _ in range(4))
        return f"first_name={first};first_forms={form};surname={surname};surname_parts={part}"

    def direct(self, name: str) -> str:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if "address" in name:
            return f"{rng.randint(1, 240)} {rng.choice(STREETS)}"
        if "phone" in name:
            return f"07700 900{rng.randint(0, 999):03d}"
        if "email" in name or "contact" in name:
            return f"{first.lower()}.{last.lower()}@example.org"
        if "gp" in name or "visitor" in name:
            return f"Dr {rng.choice(LAST_NAMES)}, {rng.choice(STREETS)} Surgery"
        return f"{first} {last}"

    def attribute(self, column: Column, event: date) -> str:
        rng = self.rng
        if column.type == "date":
            return event.isoformat()
        if column.type == "boolean":
            return rng.choice(["Y", "N"])
        if column.type == "integer":
            low, high, step = int(column.minimum or 0), int(column.maximum or 0), column.step or 1
            if column.name.startswith(("sessions", "contacts", "suspensions", "goals")):
                high = min(high, low + (3 if column.name.startswith(("suspensions", "goals")) else 30))
            return str(rng.randrange(low, high + 1, step))
        if column.type == "number":
            return f"{rng.uniform(column.minimum or 0, column.maximum or 1):.2f}"
        if column.values:
            return rng.choice(column.values)
        return rng.choice(FREE_TEXT.get(column.name, ["other"]))

    def spoil(self, values: dict[str, str]) -> None:
        """Make one value of the row break its rule."""
        candidates = [c for c in self.dataset.contract.columns if c.role in ("identifier", "quasi") or
                      (c.role == "attribute" and c.type in ("integer", "date"))]
        column = self.rng.choice(candidates)
        if column.id_type == "nhs_number":
            values[column.name] = wrong_check_digit(values[column.name])
        elif column.id_type == "upn":
            values[column.name] = wrong_check_letter(values[column.name])
        elif column.role == "identifier":
            values[column.name] = " "  # blank reference
        elif column.generalise in ("postcode_district", "postcode_sector"):
            values[column.name] = values[column.name].split()[0]  # outward code only
        elif column.role == "quasi" or column.type == "date":
            values[column.name] = "31/02/2024"
        else:
            values[column.name] = str(int(column.maximum or 0) + 1)


def generate(policy: Policy, partner: str, dataset: str, rows: int = 100, *, seed: int = 0,
             invalid_rate: float = 0.0, fmt: str = "csv", extra_columns: tuple[str, ...] = (),
             today: date = date(2026, 11, 1), name: str | None = None) -> SyntheticFile:
    """A partner file for one dataset of the policy, as CSV or XLSX."""
    spec = policy.partners[partner].datasets[dataset]
    generator = _Generator(policy, spec, seed, today)
    header = [c.name for c in spec.contract.columns] + list(extra_columns)
    records, invalid = [], set()
    for index in range(rows):
        values = generator.row()
        for extra in extra_columns:
            values[extra] = generator.direct(extra)
        if invalid_rate and generator.rng.random() < invalid_rate:
            generator.spoil(values)
            invalid.add(index + 2)
        records.append(values)
    content = _xlsx(header, records) if fmt == "xlsx" else _csv(header, records)
    file_name = name or f"{dataset}-{today:%Y-%m}-{seed}.{fmt}"
    return SyntheticFile(partner, dataset, file_name, content, header, records, invalid)


def _csv(header: list[str], records: list[dict[str, str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([record.get(name, "") for name in header] for record in records)
    return out.getvalue().encode("utf-8")


def _xlsx(header: list[str], records: list[dict[str, str]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("data")
    sheet.append(header)
    for record in records:
        sheet.append([record.get(name, "") for name in header])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
