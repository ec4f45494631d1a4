"""Match keys: what names, a date of birth and a postcode say about who a person is, kept only as keyed tokens.

Where a partner sends direct identifiers, they are normalised at ingest and turned into tokens before they are
dropped, in the manner of the ONS census match keys: each token is an HMAC under the platform's `linkage` domain
(a key of its own, so a token can never be joined to a pseudonym), over one normalised field or combination.

- Names: Unicode folded to ASCII (diacritics removed), case folded, letters only; a full name splits into its
  first and last words. Each name also gets a phonetic code (jellyfish's NYSIIS) and, for first names, the formal
  names it may be short for (the `nicknames` list: Bob, Rob and Robert share one).
- Date of birth: the date, the date with day and month swapped (a common keying error), and the birth month.
- Postcode: the full postcode, its sector and its district.

Tokens feed the probabilistic model (`linkage.py`) and the composite keys a rights request is matched on. They
live only in the restricted linkage store: never in curated data, receipts, reports, extracts or logs.

Names can also be tokenised at source. An NHS trust that must pseudonymise before it shares runs the source tool
(`source.py`) over its names: it keys each name token under the programme source key, and the platform re-keys
what arrives under the linkage domain. So that a trust's tokens meet the same child's names sent by a charity,
the platform keys every name token the same two ways round:

    name token = HMAC(K_linkage, "mk:src:<kind>:" + HMAC(K_source, "mk:<kind>:" + normalised name)[:16])

The names a trust sends as tokens are what keeps twins apart: they share a birth date and an address, never a
first name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import jellyfish
import pyarrow as pa

from shared.identity.pseudonymise import SOURCE_DOMAIN, Pseudonymiser, source_key

LINKAGE_DOMAIN = "linkage"
FIELDS = ("first_name", "surname", "full_name", "date_of_birth", "postcode", "name_tokens")
"""What a contract column may say it holds for matching (`match:` in the policy); `name_tokens` is a name turned
into tokens at source by the source tool."""

TOKEN_COLUMNS = ("first_name", "first_sound", "surname", "surname_sound", "date_of_birth", "dob_swapped",
                 "birth_month", "postcode", "sector", "district")
"""One token each, or none where the row has no such value."""
LIST_COLUMNS = ("first_forms", "surname_parts")
"""Several tokens each: the formal names a first name may be short for; each part of a double-barrelled surname."""
STRONG_KEYS = ("name_dob", "forms_dob", "name_swapped_dob")
"""Composite keys that name one person on their own: full name (or a formal form) and date of birth."""

NAME_TOKEN_KINDS = {"first_name": "first", "first_sound": "first_sound", "first_forms": "first_form",
                    "surname": "surname", "surname_sound": "surname_sound", "surname_parts": "surname_part",
                    "name_dob": "k:name_dob", "forms_dob": "k:forms_dob", "name_swapped_dob": "k:name_dob"}
"""What a name yields, by column, and the kind each is keyed as: what the source tool writes for a trust."""
AT_SOURCE = frozenset(NAME_TOKEN_KINDS.values())
"""Kinds keyed under the source key first, so tokens made at source and here agree."""
NAME_TOKENS_LIMIT = 2_000
"""Characters a cell of name tokens may hold: a long double-barrelled name's tokens fit with room to spare."""
_NAMED_TOKENS = rf"(?:{'|'.join(NAME_TOKEN_KINDS)})=[0-9a-f]{{32}}(?:,[0-9a-f]{{32}})*"
NAME_TOKENS_PATTERN = f"{_NAMED_TOKENS}(?:;{_NAMED_TOKENS})*"
"""A cell of name tokens as the source tool writes it, of the kinds it writes (Python's re and Arrow's RE2 alike)."""
_NAME_TOKENS = re.compile(NAME_TOKENS_PATTERN)

CACHE_LIMIT = 200_000
"""Single-field tokens remembered per upload: enough for a national extract's names, small in memory."""
_LETTERS = re.compile(r"[^a-z]")


@dataclass(frozen=True)
class Identity:
    """One row's normalised identifying values, held in memory only while the row is processed."""

    first: str | None = None
    surname: str | None = None
    born: date | None = None
    postcode: str | None = None
    """Normalised by the contract: upper case, one space before the inward code (`SW9 8AB`)."""
    name_tokens: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """A name tokenised at source: (column, its source tokens), as `parse_name_tokens` reads them."""

    @property
    def empty(self) -> bool:
        return not (self.first or self.surname or self.born or self.postcode or self.name_tokens)


def fold(text: str) -> str:
    """Diacritics off, case folded, letters only: `Zoë` and `ZOE` are one name; `O'Neil` is `oneil`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _LETTERS.sub("", ascii_text.casefold())


def split_full_name(text: str) -> tuple[str | None, str | None]:
    """First and last words; a hyphenated surname stays one word (its parts are compared separately)."""
    words = [word for word in re.split(r"[\s,]+", text.strip()) if fold(word)]
    if not words:
        return None, None
    return fold(words[0]) or None, _surname(words[-1]) if len(words) > 1 else None


def identity_from(values: Mapping[str, object]) -> Identity:
    """The identity of a row from its `match` values: first_name, surname, full_name, date_of_birth, postcode."""
    first = (fold(str(values["first_name"])) or None) if values.get("first_name") else None
    surname = _surname(str(values["surname"])) if values.get("surname") else None
    if values.get("full_name"):
        whole_first, whole_surname = split_full_name(str(values["full_name"]))
        first, surname = first or whole_first, surname or whole_surname
    born = values.get("date_of_birth")
    postcode = values.get("postcode")
    at_source = parse_name_tokens(str(values["name_tokens"])) if values.get("name_tokens") else ()
    return Identity(first, surname, born if isinstance(born, date) else None,
                    str(postcode) if postcode else None, at_source)


def parse_name_tokens(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`first_name=<token>;first_forms=<token>,<token>;...` as the source tool writes it; ValueError otherwise."""
    if len(text) > NAME_TOKENS_LIMIT or not _NAME_TOKENS.fullmatch(text):
        raise ValueError("not name tokens as the source tool writes them")
    return tuple((column, tuple(tokens.split(","))) for column, _, tokens in
                 (part.partition("=") for part in text.split(";")))


def _surname(text: str) -> str | None:
    parts = [fold(part) for part in re.split(r"[\s-]+", text) if fold(part)]
    return "-".join(parts) or None


@lru_cache(maxsize=4096)
def first_name_forms(first: str) -> tuple[str, ...]:
    """The name and the formal names it may be short for: `bob` -> bob, robert, ... (the `nicknames` list)."""
    return tuple(sorted({first, *(fold(name) for name in _nicknamer().canonicals_of(first))}))


@lru_cache(maxsize=1)
def _nicknamer():  # type: ignore[no-untyped-def]
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=8192)
def sound(name: str) -> str:
    """NYSIIS: Mohammed and Muhammad, Catherine and Kathryn sound alike."""
    return jellyfish.nysiis(name.replace("-", ""))


class _TokenMaker:
    """The match-key recipe, whatever key the tokens are made under."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], str] = {}

    def _keyed(self, kind: str, value: str) -> str:
        raise NotImplementedError

    def keyed_column(self, kind: str, values: pa.Array) -> pa.Array:
        """`_keyed` over a column of values, each distinct one once; nulls stay null (`matchcolumns.py`)."""
        raise NotImplementedError

    def _token(self, kind: str, value: str) -> str:
        """Names, dates and postcodes repeat across a file: each distinct one is keyed once per upload."""
        known = self._known.get((kind, value))
        if known is None:
            known = self._keyed(kind, value)
            if len(self._known) < CACHE_LIMIT and not kind.startswith("k:"):
                self._known[(kind, value)] = known
        return known

    def tokens(self, identity: Identity) -> dict[str, object]:
        """Every token column (None where the value is missing) and the list columns (empty where missing)."""
        first, surname, born, postcode = identity.first, identity.surname, identity.born, identity.postcode
        token = self._token
        out: dict[str, object] = dict.fromkeys(TOKEN_COLUMNS)
        out.update({name: [] for name in LIST_COLUMNS})
        if first:
            out |= {"first_name": token("first", first), "first_sound": token("first_sound", sound(first)),
                    "first_forms": [token("first_form", form) for form in first_name_forms(first)]}
        if surname:
            out |= {"surname": token("surname", surname), "surname_sound": token("surname_sound", sound(surname)),
                    "surname_parts": [token("surname_part", part) for part in surname.split("-")]}
        if born:
            out |= {"date_of_birth": token("dob", born.isoformat()), "birth_month": token("born", f"{born:%Y-%m}"),
                    "dob_swapped": token("dob", _swapped(born).isoformat()) if _swappable(born) else None}
        if postcode:
            outward, _, inward = postcode.partition(" ")
            out |= {"postcode": token("postcode", postcode), "district": token("district", outward),
                    "sector": token("sector", f"{outward} {inward[:1]}") if inward else None}
        return out

    def keys(self, identity: Identity) -> dict[str, list[str]]:
        """Composite keys in the manner of the ONS census match keys, each naming one person on its own: the
        full name (or a formal form of the first name) with the date of birth, or with day and month swapped."""
        first, surname, born = identity.first, identity.surname, identity.born
        if not (first and surname and born):
            return {}
        keys = {"name_dob": [self._token("k:name_dob", f"{first}|{surname}|{born}")],
                "forms_dob": [self._token("k:forms_dob", f"{form}|{surname}|{born}")
                              for form in first_name_forms(first) if form != first]}
        if _swappable(born):
            keys["name_swapped_dob"] = [self._token("k:name_dob", f"{first}|{surname}|{_swapped(born)}")]
        return keys


class MatchKeys(_TokenMaker):
    """Tokens for one row's identity under the linkage domain key; names by way of the source key."""

    def __init__(self, root_key: bytes) -> None:
        super().__init__()
        self._linkage = Pseudonymiser(root_key, LINKAGE_DOMAIN)
        self._source = SourceNames(source_key(root_key))

    def _keyed(self, kind: str, value: str) -> str:
        if kind in AT_SOURCE:
            return self._from_source(kind, self._source._keyed(kind, value))
        return self._linkage.pseudonym(f"mk:{kind}", value)

    def _from_source(self, kind: str, token: str) -> str:
        return self._linkage.pseudonym(f"mk:src:{kind}", token)

    def keyed_column(self, kind: str, values: pa.Array) -> pa.Array:
        if kind in AT_SOURCE:
            return self.from_source_column(kind, self._source.keyed_column(kind, values))
        return self._linkage.pseudonyms_of(f"mk:{kind}", values, repeating=not kind.startswith("k:"))

    def from_source_column(self, kind: str, tokens: pa.Array) -> pa.Array:
        """Tokens made under the source key, re-keyed under the linkage key: `_from_source` for a column."""
        return self._linkage.pseudonyms_of(f"mk:src:{kind}", tokens, repeating=not kind.startswith("k:"))

    def tokens(self, identity: Identity) -> dict[str, object]:
        out = super().tokens(identity)
        for column, tokens in identity.name_tokens:
            if column in TOKEN_COLUMNS or column in LIST_COLUMNS:
                rekeyed = [self._from_source(NAME_TOKEN_KINDS[column], token) for token in tokens]
                out[column] = rekeyed if column in LIST_COLUMNS else rekeyed[0]
        return out

    def keys(self, identity: Identity) -> dict[str, list[str]]:
        keys = super().keys(identity)
        for column, tokens in identity.name_tokens:
            if column in STRONG_KEYS:
                keys[column] = [self._from_source(NAME_TOKEN_KINDS[column], token) for token in tokens]
        return keys


class SourceNames(_TokenMaker):
    """A name's tokens under the programme source key: what a trust's source tool writes in place of the name."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self._at_source = Pseudonymiser.from_domain_key(key, SOURCE_DOMAIN)

    def _keyed(self, kind: str, value: str) -> str:
        return self._at_source.pseudonym(f"mk:{kind}", value)

    def keyed_column(self, kind: str, values: pa.Array) -> pa.Array:
        return self._at_source.pseudonyms_of(f"mk:{kind}", values, repeating=not kind.startswith("k:"))

    def text(self, first: str | None, surname: str | None, born: date | None) -> str:
        """The cell the tool writes: each name column's tokens, and the strong keys where the birth date is
        known; empty where there is no name."""
        identity = Identity(first=first, surname=surname, born=born)
        made: dict[str, object] = {**self.tokens(Identity(first=first, surname=surname)), **self.keys(identity)}
        return ";".join(f"{column}={_joined(made[column])}" for column in NAME_TOKEN_KINDS if made.get(column))


def _joined(value: object) -> str:
    return ",".join(value) if isinstance(value, Sequence) and not isinstance(value, str) else str(value)


def _swappable(born: date) -> bool:
    return born.day <= 12 and born.day != born.month


def _swapped(born: date) -> date:
    return date(born.year, born.day, born.month)
