"""Match keys a column at a time: the columnar ingest path's form of `MatchKeys.tokens` and `MatchKeys.keys`.

The row path makes each row's tokens from its `Identity` (`matchkeys.py`), one row at a time. This module makes
the same tokens for a whole batch of rows, so that uploads with names to match on take the columnar path too:

- names are normalised once per distinct value, by the row path's own functions (`fold`, the nicknames list,
  NYSIIS), and birth dates and postcodes likewise, so the recipe is written once;
- every token is keyed as a column (`MatchKeys.keyed_column`: HMAC in Arrow, each distinct value once), the
  composite keys (name and birth date) included;
- name tokens made at source (`source.py`) are split and re-keyed by Arrow, the last of a kind winning as it
  does on the row path.

`tests/test_columnar.py` holds the two paths equal, linkage columns included, on every file shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.identity.matchkeys import (
    LIST_COLUMNS,
    NAME_TOKEN_KINDS,
    STRONG_KEYS,
    TOKEN_COLUMNS,
    MatchKeys,
    _surname,
    _swappable,
    _swapped,
    first_name_forms,
    fold,
    sound,
    split_full_name,
)

STRING = pa.string()
STRING_LIST = pa.list_(STRING)


def match_columns(keys: MatchKeys, inputs: Mapping[str, pa.Array], rows: int) -> dict[str, pa.Array]:
    """Per row, what `RowRecord.columns` carries: each token column (null where the row has no such value), each
    list column and the strong keys (empty where it has none).

    inputs: the contract's match values by field (`matchkeys.FIELDS`), null where a row has none: names as the
    trimmed cell, the date of birth as a date, the postcode in full (`SW9 8AB`), name tokens as the source tool
    wrote them (already checked)."""
    first, surname = _names(inputs, rows)
    born = inputs.get("date_of_birth", pa.nulls(rows, pa.date32()))
    born_text, month, swapped = _per_distinct_many(born, _birth_texts, 3)
    out = {"first_name": keys.keyed_column("first", first),
           "first_sound": keys.keyed_column("first_sound", _per_distinct(first, sound)),
           "first_forms": _keyed_lists(keys, "first_form", _per_distinct(first, _forms, STRING_LIST)),
           "surname": keys.keyed_column("surname", surname),
           "surname_sound": keys.keyed_column("surname_sound", _per_distinct(surname, sound)),
           "surname_parts": _keyed_lists(keys, "surname_part", _per_distinct(surname, _parts, STRING_LIST)),
           "date_of_birth": keys.keyed_column("dob", born_text), "birth_month": keys.keyed_column("born", month),
           "dob_swapped": keys.keyed_column("dob", swapped)}
    postcode = inputs.get("postcode", pa.nulls(rows, pa.string()))
    for name, keyed in zip(("postcode", "district", "sector"), _postcode_texts(postcode), strict=True):
        out[name] = keys.keyed_column(name, keyed)
    strong = _strong_keys(keys, first, surname, born_text, swapped)
    if "name_tokens" in inputs:
        _take_name_tokens(keys, inputs["name_tokens"], out, strong)
    out["strong_keys"] = concat_lists([strong[name] for name in STRONG_KEYS], rows)
    return out


def empty_lists(rows: int) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(np.zeros(rows + 1, np.int32)), pa.array([], pa.string()))


def concat_lists(lists: list[pa.ListArray], rows: int) -> pa.ListArray:
    """Row by row, the lists one after another."""
    values = pa.concat_arrays([items.flatten() for items in lists])
    parents = np.concatenate([np.asarray(pc.list_parent_indices(items), np.int64) for items in lists])
    order = np.argsort(parents, kind="stable")
    return _lists(np.bincount(parents, minlength=rows), values.take(pa.array(order)))


# Names, dates and postcodes, normalised once per distinct value ------------------------------------------------

def _names(inputs: Mapping[str, pa.Array], rows: int) -> tuple[pa.Array, pa.Array]:
    """First name and surname per row, as `identity_from` reads them: their own columns first, then a full name."""
    first = _per_distinct(inputs["first_name"], lambda text: fold(text) or None) if "first_name" in inputs \
        else pa.nulls(rows, pa.string())
    surname = _per_distinct(inputs["surname"], _surname) if "surname" in inputs else pa.nulls(rows, pa.string())
    if "full_name" in inputs:
        whole_first, whole_surname = _per_distinct_many(inputs["full_name"], split_full_name, 2)
        first, surname = pc.coalesce(first, whole_first), pc.coalesce(surname, whole_surname)
    return first, surname


def _forms(first: str) -> list[str]:
    return list(first_name_forms(first))


def _parts(surname: str) -> list[str]:
    return surname.split("-")


def _birth_texts(born: date) -> tuple[str, str, str | None]:
    return born.isoformat(), f"{born:%Y-%m}", _swapped(born).isoformat() if _swappable(born) else None


def _postcode_texts(postcodes: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The postcode, its district and its sector, as `MatchKeys.tokens` splits them (by Arrow: postcodes seldom
    repeat in a file): the district before the first space, the sector that and the next character, if any."""
    parts = pc.extract_regex(postcodes, r"^(?P<outward>[^ ]*)(?: (?P<next>.?))?")
    outward, following = pc.struct_field(parts, [0]), pc.struct_field(parts, [1])
    sector = pc.if_else(pc.equal(following, ""), pa.scalar(None, pa.string()),
                        pc.binary_join_element_wise(outward, following, " "))
    return postcodes, outward, sector


def _per_distinct(values: pa.Array, convert: Callable[[Any], Any], kind: pa.DataType = STRING) -> pa.Array:
    """`convert` once per distinct non-null value, spread back over the rows; a null row gets an empty list where
    the result is a list, null otherwise."""
    encoded = values.dictionary_encode(null_encoding="encode")
    empty: list[str] | None = [] if pa.types.is_list(kind) else None
    converted = [empty if value is None else convert(value) for value in encoded.dictionary.to_pylist()]
    return pa.array(converted, kind).take(encoded.indices)


def _per_distinct_many(values: pa.Array, convert: Callable[[Any], tuple[Any, ...]], width: int) -> list[pa.Array]:
    """Like `_per_distinct`, for a conversion that gives several strings (or None) per value."""
    encoded = values.dictionary_encode(null_encoding="encode")
    converted = [(None,) * width if value is None else convert(value) for value in encoded.dictionary.to_pylist()]
    return [pa.array(list(column), pa.string()).take(encoded.indices) for column in zip(*converted, strict=True)] \
        if converted else [pa.nulls(len(values), pa.string()) for _ in range(width)]


# Composite keys and name tokens made at source -----------------------------------------------------------------

def _strong_keys(keys: MatchKeys, first: pa.Array, surname: pa.Array, born: pa.Array,
                 swapped: pa.Array) -> dict[str, pa.ListArray]:
    """`MatchKeys.keys` per row: the full name with the birth date, with a formal form of the first name, and with
    day and month swapped; none where the first name, the surname or the birth date is missing."""
    def keyed(kind: str, *parts: pa.Array) -> pa.Array:
        return keys.keyed_column(kind, pc.binary_join_element_wise(*parts, "|"))

    forms = _per_distinct(first, lambda name: [form for form in first_name_forms(name) if form != name],
                          STRING_LIST)
    owners = pa.array(np.asarray(pc.list_parent_indices(forms), np.int64))
    forms_dob = keyed("k:forms_dob", forms.flatten(), surname.take(owners), born.take(owners))
    return {"name_dob": _singletons(keyed("k:name_dob", first, surname, born)),
            "forms_dob": drop_nulls(_lists(np.asarray(pc.list_value_length(forms)), forms_dob)),
            "name_swapped_dob": _singletons(keyed("k:name_dob", first, surname, swapped))}


def _take_name_tokens(keys: MatchKeys, cells: pa.Array, out: dict[str, pa.Array],
                      strong: dict[str, pa.ListArray]) -> None:
    """Rows with name tokens made at source: each kind re-keyed and put in its column, in place of what the row's
    names gave (a row sends one or the other); where a kind appears twice in a cell, the last one counts."""
    parts = pc.split_pattern(cells, ";")
    owners = np.asarray(pc.list_parent_indices(parts), np.int64)
    pairs = pc.split_pattern(parts.flatten(), "=", max_splits=1)
    kinds, texts = pc.list_element(pairs, 0), pc.list_element(pairs, 1)
    for column, kind in NAME_TOKEN_KINDS.items():
        chosen = np.asarray(pc.equal(kinds, column), bool)
        if not chosen.any():
            continue
        rows = owners[chosen]
        last = np.append(rows[1:] != rows[:-1], True)
        tokens = pc.split_pattern(texts.filter(pa.array(chosen)).filter(pa.array(last)), ",")
        rekeyed = _lists(np.asarray(pc.list_value_length(tokens)), keys.from_source_column(kind, tokens.flatten()))
        if column in TOKEN_COLUMNS:
            out[column] = _put(out[column], rows[last], pc.list_element(rekeyed, 0))
        elif column in LIST_COLUMNS:
            out[column] = _put(out[column], rows[last], rekeyed)
        else:
            strong[column] = _put(strong[column], rows[last], rekeyed)


# Arrow helpers ----------------------------------------------------------------------------------------------------

def _keyed_lists(keys: MatchKeys, kind: str, lists: pa.ListArray) -> pa.ListArray:
    return _lists(np.asarray(pc.list_value_length(lists)), keys.keyed_column(kind, lists.flatten()))


def _lists(lengths: np.ndarray, values: pa.Array) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _singletons(values: pa.Array) -> pa.ListArray:
    """A list of the one value per row, empty where it is null."""
    return _lists(np.asarray(pc.is_valid(values), np.int64), values.drop_null())


def drop_nulls(lists: pa.ListArray) -> pa.ListArray:
    """Each list without its null values."""
    values = lists.flatten()
    if values.null_count == 0:
        return lists
    valid = pc.is_valid(values)
    owners = np.asarray(pc.list_parent_indices(lists), np.int64)[np.asarray(valid, bool)]
    return _lists(np.bincount(owners, minlength=len(lists)), values.filter(valid))


def _put(values: pa.Array, rows: np.ndarray, replacements: pa.Array) -> pa.Array:
    """`values` with the entries at `rows` replaced, in order, by `replacements`."""
    order = np.arange(len(values))
    order[rows] = len(values) + np.arange(len(rows))
    return pa.concat_arrays([values, replacements.cast(values.type)]).take(pa.array(order))
