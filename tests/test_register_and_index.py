"""Rows of people on the suppression register are dropped and counted, never stored; every stored person is in
the subject index, and identifiers seen on one row are linked, so either finds the other."""

from __future__ import annotations

import base64

from devtools import synthetic
from shared.identity.pseudonymise import Pseudonymiser, normalise
from shared.identity.register import ALL_DATASETS, CONSENT_DATASETS, SuppressionRegister
from shared.identity.subjects import SubjectIndex
from shared.platform.storage import LINKS, REGISTER, SUBJECTS
from tests.conftest import TEST_ROOT_KEY
from tests.helpers import curated_rows, deliver_all, receipts, upload

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
    register.add(family_ref_pseudonym(erased["family_ref"]), ALL_DATASETS, "erasure")
    register.add(nhs_pseudonym(withdrawn["nhs_number"]), CONSENT_DATASETS, "withdrawal")  # by the other identifier
    upload(storage, "family-support-charity", file.blob_name, file.content)
    deliver_all(storage)

    [receipt] = receipts(storage)
    assert receipt["rows"]["suppressed"] == 2
    assert receipt["rows"]["stored"] == len(consenting) - 2
    stored = {row["family_ref_pseudonym"] for row in curated_rows(storage)}
    assert family_ref_pseudonym(erased["family_ref"]) not in stored
    assert family_ref_pseudonym(withdrawn["family_ref"]) not in stored
    indexed = {row["pseudonym"] for row in storage.table(SUBJECTS).list_entities()}
    assert family_ref_pseudonym(erased["family_ref"]) not in indexed


def test_withdrawal_of_consent_leaves_legitimate_interest_data(app_env, storage):
    policy = app_env("leap")
    file = synthetic.generate(policy, "nhs-community-health", "health-visits", rows=10, seed=4)
    person = PSEUDONYMS.pseudonym("partner_pseudonym:nhs-community-health", file.rows[0]["nhs_pseudonym"])
    SuppressionRegister(storage.table(REGISTER)).add(person, CONSENT_DATASETS, "withdrawal")
    upload(storage, "nhs-community-health", file.blob_name, file.content)
    deliver_all(storage)
    assert receipts(storage)[0]["rows"]["suppressed"] == 0
    assert person in {row["subject_id"] for row in curated_rows(storage)}


def test_subject_index_and_links_find_a_person_by_either_identifier(app_env, storage):
    policy = app_env("leap")
    file = consenting_sessions(policy)
    upload(storage, "family-support-charity", file.blob_name, file.content)
    deliver_all(storage)
    person = next(row for row in file.rows if row["consent"] == "Y")
    by_nhs, by_ref = nhs_pseudonym(person["nhs_number"]), family_ref_pseudonym(person["family_ref"])

    index = SubjectIndex(storage.table(SUBJECTS), storage.table(LINKS))
    assert index.linked(by_nhs) == {by_nhs, by_ref}
    assert index.linked(by_ref) == {by_nhs, by_ref}
    [entry] = index.files_for(by_ref)
    assert entry["dataset"] == "sessions" and entry["partner"] == "family-support-charity"
    assert entry["file"].startswith("sessions/purge_month=")
    rows = [row for row in curated_rows(storage) if row["family_ref_pseudonym"] == by_ref]
    assert len(rows) == 1 and rows[0]["nhs_number_pseudonym"] == by_nhs


def test_the_register_holds_pseudonyms_only(storage):
    SuppressionRegister(storage.table(REGISTER)).add(nhs_pseudonym("9434765919"), ALL_DATASETS, "erasure")
    [entity] = storage.table(REGISTER).list_entities()
    assert "9434765919" not in str(dict(entity))
    assert base64.b64encode(b"9434765919").decode() not in str(dict(entity))
