"""Pseudonyms exactly as the brief specifies, identifier normalisation with python-stdnum check digits, and the
generalisation and retention arithmetic that decide what else is stored."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import date

import pyarrow as pa
import pytest

from shared.identity.pseudonymise import FEW_MESSAGES, InvalidIdentifier, Pseudonymiser, normalise, scoped_type
from shared.policy.generalise import InvalidValue, age_in_months, postcode_district, postcode_sector
from shared.policy.retention_rules import Offset, RetentionRule, add_offset, purge_month

ROOT = bytes(range(32))


def brief(domain: str, id_type: str, value: str) -> str:
    domain_key = hmac.new(ROOT, f"fdp:domain:{domain}".encode(), hashlib.sha256).digest()
    return hmac.new(domain_key, f"{id_type}:{value}".encode(), hashlib.sha256).digest()[:16].hex()


def test_pseudonym_is_the_brief_formula():
    pseudonym = Pseudonymiser(ROOT).pseudonym("nhs_number", "9434765919")
    assert pseudonym == brief("subject", "nhs_number", "9434765919")
    assert len(pseudonym) == 32 and pseudonym == pseudonym.lower()


def test_domains_do_not_join():
    ours = Pseudonymiser(ROOT).pseudonym("nhs_number", "9434765919")
    theirs = Pseudonymiser(ROOT, "extract:iff-research").pseudonym("nhs_number", "9434765919")
    assert theirs == brief("extract:iff-research", "nhs_number", "9434765919") and theirs != ours


def test_a_column_of_pseudonyms_is_hmac_of_each_value_on_random_keys_and_messages():
    """The column path composes HMAC from DataFusion's SHA-256; Python's hmac module is the reference. Keys of
    every length (longer than a block is hashed first) and messages on both sides of the block boundaries."""
    rng = random.Random(14)
    for key_length in (32, 16, 64, 65, 100):
        key = rng.randbytes(key_length)
        messages = [rng.randbytes(rng.choice([0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 200]))
                    for _ in range(FEW_MESSAGES)]  # enough for DataFusion; one fewer, and hashlib
        for some in (messages, messages[1:]):
            column = Pseudonymiser.from_domain_key(key, "subject").pseudonyms(pa.array(some, pa.binary()))
            assert column.to_pylist() == [hmac.new(key, m, hashlib.sha256).digest()[:16].hex() for m in some]


def test_a_column_of_pseudonyms_equals_the_single_ones():
    pseudonymiser = Pseudonymiser(ROOT)
    values = ["9434765919", "FA-1", "Ré-5", ""]
    column = pseudonymiser.pseudonyms(pa.array([f"nhs_number:{v}" for v in values]))
    assert column.to_pylist() == [pseudonymiser.pseudonym("nhs_number", v) for v in values]
    assert pseudonymiser.pseudonyms(pa.array([], pa.binary())).to_pylist() == []
    with pytest.raises(ValueError, match="null"):
        pseudonymiser.pseudonyms(pa.array(["nhs_number:1", None]))


@pytest.mark.parametrize("raw", ["9434765919", "943 476 5919", "943-476-5919", " 9434765919 "])
def test_nhs_number_normalisation(raw):
    assert normalise("nhs_number", raw) == "9434765919"


@pytest.mark.parametrize(("raw", "rule"), [("9434765918", "nhs_number.check_digit"),
                                            ("943476591", "nhs_number.format"), ("94347659A9", "nhs_number.format")])
def test_invalid_nhs_numbers_name_the_rule_not_the_value(raw, rule):
    with pytest.raises(InvalidIdentifier) as error:
        normalise("nhs_number", raw)
    assert error.value.rule == rule and raw not in str(error.value)


def test_upn_normalisation_and_check_letter():
    assert normalise("upn", "b801 2000 05001") == "B801200005001"
    assert normalise("upn", "m80120000500a") == "M80120000500A"  # a temporary UPN ends in a letter
    with pytest.raises(InvalidIdentifier) as error:
        normalise("upn", "A801200005001")
    assert error.value.rule == "upn.check_letter"


def test_partner_references_are_trimmed_and_scoped():
    assert normalise("partner_ref", "  AB-123 ") == "AB-123"
    assert scoped_type("partner_ref", "school-a") == "partner_ref:school-a"
    assert scoped_type("nhs_number", "school-a") == "nhs_number"
    with pytest.raises(InvalidIdentifier):
        normalise("partner_ref", "   ")


def test_postcode_generalisation():
    assert postcode_district("sw9 8ab") == "SW9" and postcode_sector("SW98AB") == "SW9 8"
    assert postcode_sector("EC1A 1BB") == "EC1A 1"
    with pytest.raises(InvalidValue):
        postcode_district("SW9")


def test_age_in_months():
    assert age_in_months(date(2024, 1, 31), date(2024, 3, 30)) == 1
    assert age_in_months(date(2024, 1, 15), date(2024, 3, 15)) == 2


def test_leap_day_plus_whole_years_lands_on_28_february():
    assert add_offset(date(2024, 2, 29), Offset(years=1)) == date(2025, 2, 28)


def test_purge_month_is_rounded_up_to_the_month_end_and_capped():
    by_birth = RetentionRule("date_of_birth", Offset(years=25), column="date_of_birth")
    assert purge_month(by_birth, received=date(2026, 1, 1), programme_end=None,
                       anchor_value=date(2020, 6, 3)) == "2045-06"
    capped = RetentionRule("received", Offset(years=40), cap=Offset(years=25))
    assert purge_month(capped, received=date(2026, 1, 1), programme_end=date(2025, 3, 31),
                       anchor_value=None) == "2050-03"
