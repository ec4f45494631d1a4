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
"""

from __future__ import annotations

import argparse
import base64
import csv
import sys
from pathlib import Path

from shared.identity.pseudonymise import InvalidIdentifier, Pseudonymiser, domain_key, normalise

SOURCE_DOMAIN = "source"
TOKEN_TYPE = "nhs_number_token"  # noqa: S105 (an identifier type, not a secret)


def source_key(root_key: bytes) -> bytes:
    """The programme source key: one-way from the root key, so holding it reveals nothing of the root key."""
    return domain_key(root_key, SOURCE_DOMAIN)


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


def tokenise_file(source: Path, target: Path, columns: list[str], tokens: SourceTokens) -> dict[str, int]:
    """Replace the named columns' NHS numbers by tokens; returns how many were tokenised and left blank."""
    counts = {"tokenised": 0, "blank": 0}
    with source.open(newline="", encoding="utf-8-sig") as fin, target.open("w", newline="", encoding="utf-8") as out:
        reader = csv.reader(fin)
        writer = csv.writer(out)
        header = next(reader)
        wanted = {name.strip().lower() for name in columns}
        positions = [i for i, name in enumerate(header) if name.strip().lower() in wanted]
        missing = wanted - {header[i].strip().lower() for i in positions}
        if missing:
            raise SystemExit(f"{source.name}: no column named {', '.join(sorted(missing))} in the header")
        writer.writerow(header)
        for row in reader:
            for position in positions:
                if position < len(row):
                    row[position] = _token_or_blank(row[position], tokens, counts)
            writer.writerow(row)
    return counts


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
    parser.add_argument("--column", action="append", required=True, help="a column of NHS numbers (repeatable)")
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    counts = tokenise_file(args.source, args.target, args.column, SourceTokens(read_key_file(args.key_file)))
    print(f"{counts['tokenised']} NHS numbers tokenised; {counts['blank']} failed their check digit and were "
          f"left blank", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
