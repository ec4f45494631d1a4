"""Pseudonymisation at source: the programme source key and the small tool an NHS trust runs on its own machine.

LEAP's notice says NHS trust partners pseudonymise before they share. So that a trust's rows still meet the same
child's rows from a charity or a nursery, every party computes one token per NHS number under the programme's
source key:

    K_source = HMAC-SHA256(root, "fdp:domain:source")          (issued to trusts by `python -m shared.cli`)
    token    = first 16 bytes, lowercase hex, of HMAC-SHA256(K_source, "nhs_number:" + normalised NHS number)

The trust sends tokens in a column of type `nhs_number_token`; on arrival the platform re-keys them under the
root key (`nhs_number_token:<token>` under the subject domain), so no trust token is ever stored. For a raw NHS
number from another partner the platform computes the same token and its re-keyed pseudonym, which the person
index holds beside the NHS number's own pseudonym: both rows meet, and every existing pseudonym stays as it was.

The tool, for a trust (Python 3.11 and this package, nothing else):

    python -m shared.identity.source --key-file source.key --column nhs_number extract.csv tokenised.csv

reads a CSV, replaces each named column's NHS numbers by tokens (a row whose number fails its check digit is
left blank and counted, never echoed), and writes the rest of the file unchanged.

Where the contract says so, the trust also turns names into match-key tokens under the same key, so its rows
meet other partners' rows by name and, above all, twins (one birth date, one address) stay two children:

    python -m shared.identity.source --key-file source.key --column nhs_number \
        --names child_name --dob-column date_of_birth extract.csv tokenised.csv

`--names` takes one full-name column or a first-name and a surname column; they are replaced by one column,
`name_tokens`, holding the name's tokens (and, with `--dob-column`, the name-and-birth-date keys). The birth date
itself stays in the file for the platform to generalise. How the platform re-keys them: `matchkeys.py`.
"""

from __future__ import annotations

import argparse
import base64
import csv
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from shared.identity.matchkeys import SourceNames, identity_from
from shared.identity.pseudonymise import SOURCE_DOMAIN, InvalidIdentifier, Pseudonymiser, normalise, source_key

__all__ = ["SOURCE_DOMAIN", "TOKEN_TYPE", "NameColumns", "SourceTokens", "source_key", "tokenise_file"]
NAME_TOKENS_COLUMN = "name_tokens"

TOKEN_TYPE = "nhs_number_token"  # noqa: S105 (an identifier type, not a secret)


class SourceTokens:
    """NHS number -> source token, for a trust (from the source key) or the platform (from the root key)."""

    def __init__(self, key: bytes) -> None:
        self.pseudonymiser = Pseudonymiser.from_domain_key(key, SOURCE_DOMAIN)

    @classmethod
    def from_root_key(cls, root_key: bytes) -> SourceTokens:
        return cls(source_key(root_key))

    def token(self, nhs_number: str) -> str:
        """The token of an NHS number already normalised (10 digits, check digit holding)."""
        return self.pseudonymiser.pseudonym("nhs_number", nhs_number)


class NameColumns:
    """Where a file's names are (one full-name column, or first name and surname) and its birth date, if any."""

    def __init__(self, header: list[str], names: Sequence[str], dob: str | None, file_name: str) -> None:
        if len(names) not in (1, 2):
            raise SystemExit("--names takes a full-name column, or a first-name and a surname column")
        self.names = _positions(header, names, file_name)
        self.dob = _positions(header, [dob], file_name)[0] if dob else None

    def header(self, header: list[str]) -> list[str]:
        return self.replace(header, NAME_TOKENS_COLUMN)

    def replace(self, row: list[str], cell: str) -> list[str]:
        """The row with its name columns replaced by one cell where the first of them stood."""
        first = self.names[0]
        return [cell if i == first else value for i, value in enumerate(row) if i == first or i not in self.names]

    def cell(self, row: list[str], names: SourceNames) -> str:
        parts = [row[i].strip() if i < len(row) else "" for i in self.names]
        named = identity_from({"full_name": parts[0]} if len(parts) == 1 else
                              {"first_name": parts[0], "surname": parts[1]})
        born = _birth_date(row[self.dob]) if self.dob is not None and self.dob < len(row) else None
        return names.text(named.first, named.surname, born) if named.first or named.surname else ""


def tokenise_file(source: Path, target: Path, columns: list[str], tokens: SourceTokens, *,
                  names: Sequence[str] = (), dob: str | None = None,
                  source_names: SourceNames | None = None) -> dict[str, int]:
    """Replace the named columns' NHS numbers by tokens, and the name columns (if given) by their name tokens;
    returns how many NHS numbers were tokenised and left blank, and how many names were tokenised."""
    counts = {"tokenised": 0, "blank": 0, "names": 0}
    with source.open(newline="", encoding="utf-8-sig") as fin, target.open("w", newline="", encoding="utf-8") as out:
        reader = csv.reader(fin)
        writer = csv.writer(out)
        header = next(reader)
        positions = _positions(header, columns, source.name)
        name_columns = NameColumns(header, names, dob, source.name) if names else None
        writer.writerow(name_columns.header(header) if name_columns else header)
        for row in reader:
            for position in positions:
                if position < len(row):
                    row[position] = _token_or_blank(row[position], tokens, counts)
            if name_columns and source_names:
                cell = name_columns.cell(row, source_names)
                counts["names"] += bool(cell)
                row = name_columns.replace(row, cell)
            writer.writerow(row)
    return counts


def _positions(header: list[str], columns: Sequence[str], file_name: str) -> list[int]:
    """The positions of the named columns; a name not in the header stops the tool (the trust's own name)."""
    wanted = [name.strip().lower() for name in columns]
    found = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise SystemExit(f"{file_name}: no column named {', '.join(sorted(missing))} in the header")
    return [found[name] for name in wanted]


def _birth_date(text: str) -> date | None:
    """ISO (2024-03-31) or UK (31/03/2024), as the platform reads them; None where it is neither."""
    try:
        if "/" in text:
            day, month, year = text.strip().split("/")
            return date(int(year), int(month), int(day)) if len(year) == 4 else None
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _token_or_blank(value: str, tokens: SourceTokens, counts: dict[str, int]) -> str:
    if not value.strip():
        return ""
    try:
        token = tokens.token(normalise("nhs_number", value))
    except InvalidIdentifier:
        counts["blank"] += 1
        return ""
    counts["tokenised"] += 1
    return token


def read_key_file(path: Path) -> bytes:
    """The source key as issued: 32 bytes, base64, on one line."""
    key = base64.b64decode(path.read_text().strip(), validate=True)
    if len(key) != 32:
        raise SystemExit(f"{path.name} does not hold a 32-byte source key")
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.identity.source",
                                     description="Turn NHS numbers into programme tokens before a file is shared.")
    parser.add_argument("--key-file", type=Path, required=True, help="the programme source key, as issued")
    parser.add_argument("--column", action="append", default=[], help="a column of NHS numbers (repeatable)")
    parser.add_argument("--names", nargs="+", default=(), metavar="COLUMN",
                        help="a full-name column, or a first-name and a surname column, to turn into name tokens")
    parser.add_argument("--dob-column", help="the date of birth column, for the name-and-birth-date keys")
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    if not (args.column or args.names):
        parser.error("give --column, --names or both")
    key = read_key_file(args.key_file)
    counts = tokenise_file(args.source, args.target, args.column, SourceTokens(key), names=args.names,
                           dob=args.dob_column, source_names=SourceNames(key))
    print(f"{counts['tokenised']} NHS numbers tokenised; {counts['blank']} failed their check digit and were "
          f"left blank; {counts['names']} names tokenised", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
