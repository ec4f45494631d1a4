"""Rows of people on the suppression register are dropped and counted, never stored; every stored row is a record
in the person index, and person identifiers seen on one row are one person, so either finds the other."""

from __future__ import annotations

import base64

from devtools import synthetic
from shared.identity.pseudonymise import Pseudonymiser, normalise
from shared.identity.register import ALL_DATASETS, CONSENT_DATASETS, SuppressionRegister
from shared.identity.source import SourceTokens
from shared.platform.storage import REGISTER
from tests.conftest import TEST_ROOT_KEY
from tests.helpers import curated_rows, deliver_all, index_records, receipts, records_of, upload

PSEUDONYMS = Pseudonymiser(TEST_ROOT_KEY)


def family_ref_pseudonym(value: str) -> str:
    return PSEUDONYMS.pseudonym("partner_ref:family-support-charity", normalise("partner_ref", value))


def nhs_pseudonym(value: str) -> str:
    return PSEUDONYMS.pseudonym("nhs_number", normalise("nhs_number", value))


def consenting_sessions(policy, rows: int = 30) -> synthetic.SyntheticFile:
    file = synthetic.generate(policy, "family-support-charity", "sessions", rows=rows, seed=9)
    return file


def test_erased_and_withdrawn_people_are_dropped_and_counted(app_env, storage):
    policy = app_env("leap")
    file = consenting_sessions(policy)
    consenting = [row for row in file.rows if row["consent"] == "Y"]
    erased, withdrawn = consenting[0], consenting[1]
    register = SuppressionRegister(storage.table(REGISTER))
    register.add(nhs_pseudonym(erased["nhs_number"]), ALL_DATASETS, "erasure")
    register.add(token_pseudonym(withdrawn["nhs_number"]), CONSENT_DATASETS, "withdrawal")  # as a trust knows them
    upload(storage, "family-support-charity", file.blob_name, file.content)
    deliver_all(storage)

    [receipt] = receipts(storage)
    assert receipt["rows"]["suppressed"] == 2
    assert receipt["rows"]["stored"] == len(consenting) - 2
    stored = {row["nhs_number_pseudonym"] for row in curated_rows(storage)}
    assert nhs_pseudonym(erased["nhs_number"]) not in stored
    assert nhs_pseudonym(withdrawn["nhs_number"]) not in stored
    indexed = {value for record in index_records(storage) for value in record["ids"]}
    assert f"nhs_number={nhs_pseudonym(erased['nhs_number'])}" not in indexed


def test_a_family_reference_on_the_register_drops_no_one(app_env, storage):
    """A family reference names a group: an erasure never registers it, and were it registered, it would not
    drop a sibling's rows."""
    policy = app_env("leap")
    file = consenting_sessions(policy)
    SuppressionRegister(storage.table(REGISTER)).add(family_ref_pseudonym(file.rows[0]["family_ref"]),
                                                      ALL_DATASETS, "erasure")
    upload(storage, "family-support-charity", file.blob_name, file.content)
    deliver_all(storage)
    assert receipts(storage)[0]["rows"]["suppressed"] == 0


def test_withdrawal_of_consent_leaves_legitimate_interest_data(app_env, storage):
    policy = app_env("leap")
    file = synthetic.generate(policy, "nhs-community-health", "health-visits", rows=10, seed=4)
    person = PSEUDONYMS.pseudonym("nhs_number_token", file.rows[0]["nhs_pseudonym"])
    SuppressionRegister(storage.table(REGISTER)).add(person, CONSENT_DATASETS, "withdrawal")
    upload(storage, "nhs-community-health", file.blob_name, file.content)
    deliver_all(storage)
    assert receipts(storage)[0]["rows"]["suppressed"] == 0
    assert person in {row["subject_id"] for row in curated_rows(storage)}


def test_the_index_finds_a_person_by_either_identifier_and_never_by_the_family(app_env, storage):
    policy = app_env("leap")
    file = consenting_sessions(policy)
    upload(storage, "family-support-charity", file.blob_name, file.content)
    deliver_all(storage)
    person = next(row for row in file.rows if row["consent"] == "Y")
    by_nhs, by_token = nhs_pseudonym(person["nhs_number"]), token_pseudonym(person["nhs_number"])

    found = records_of(storage, by_nhs)
    assert found == records_of(storage, by_token), "a trust's token finds the same person"
    [entry] = found
    assert entry["dataset"] == "sessions" and entry["partner"] == "family-support-charity"
    assert entry["file"].startswith("sessions/purge_month=")
    assert records_of(storage, family_ref_pseudonym(person["family_ref"])) == [], "a family is nobody"
    rows = [row for row in curated_rows(storage) if row["nhs_number_pseudonym"] == by_nhs]
    assert len(rows) == 1 and rows[0]["_row"] == entry["row"]


def token_pseudonym(nhs: str) -> str:
    token = SourceTokens.from_root_key(TEST_ROOT_KEY).token(normalise("nhs_number", nhs))
    return PSEUDONYMS.pseudonym("nhs_number_token", token)


def test_the_register_holds_pseudonyms_only(storage):
    SuppressionRegister(storage.table(REGISTER)).add(nhs_pseudonym("9434765919"), ALL_DATASETS, "erasure")
    [entity] = storage.table(REGISTER).list_entities()
    assert "9434765919" not in str(dict(entity))
    assert base64.b64encode(b"9434765919").decode() not in str(dict(entity))
