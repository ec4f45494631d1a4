"""The person index as its users meet it: siblings stay two people, services meet without a shared identifier,
a trust's tokens meet raw NHS numbers, reviewers decide what the model cannot, and rights act on one person.

Everything runs through the real ingest handler and HTTP functions against Azurite."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import urllib.request
import zipfile
from pathlib import Path

import pytest

from shared.identity.source import SourceTokens, source_key, tokenise_file
from shared.platform.storage import LINKAGE, RECEIPTS
from tests.conftest import TEST_ROOT_KEY
from tests.helpers import (
    ANALYST,
    DPO,
    curated_rows,
    deliver_all,
    everything_stored,
    finished_request,
    http_api,
    index_records,
    person_index,
    rights_request,
    upload,
)

POLICY = """
programme: {name: Identity test, controller: Test council, data_residency: UK, region: uksouth}
partners:
  charity:
    name: Family charity
    kind: charity
    datasets:
      sessions:
        basis: consent
        retention: {anchor: received, years: 5}
        columns:
          family_ref: {role: identifier, type: partner_ref, identifies: group}
          nhs_number: {role: identifier, type: nhs_number, required: false}
          child_name: {role: direct, match: full_name}
          postcode: {role: quasi, generalise: postcode_sector, match: postcode}
          date_of_birth: {role: quasi, generalise: birth_month, match: date_of_birth}
          service: {role: attribute, type: string, values: [baby_steps, family_nurse]}
          consent: {role: consent}
  nursery:
    name: Nursery
    kind: nursery
    datasets:
      assessments:
        basis: consent
        retention: {anchor: received, years: 5}
        columns:
          child_ref: {role: identifier, type: partner_ref}
          child_name: {role: direct, match: full_name}
          postcode: {role: quasi, generalise: postcode_sector, match: postcode}
          date_of_birth: {role: quasi, generalise: birth_month, match: date_of_birth}
          score: {role: attribute, type: integer, min: 0, max: 60}
          consent: {role: consent}
  trust:
    name: NHS trust
    kind: nhs_trust
    datasets:
      visits:
        basis: legitimate_interest
        retention: {anchor: received, years: 5}
        columns:
          nhs_token: {role: identifier, type: nhs_number_token}
          visit: {role: attribute, type: string, values: [new_birth, one_year]}
      checks:
        basis: legitimate_interest
        retention: {anchor: received, years: 5}
        columns:
          nhs_token: {role: identifier, type: nhs_number_token, required: false}
          name_tokens: {role: direct, match: name_tokens}
          postcode: {role: quasi, generalise: postcode_sector, match: postcode, required: false}
          date_of_birth: {role: quasi, generalise: birth_month, match: date_of_birth}
          visit: {role: attribute, type: string, values: [new_birth, one_year]}
"""

ANN, BEN = "9434765919", "4010232137"
"""Two siblings: one family reference, their own NHS numbers."""
CHARITY = ("family_ref,nhs_number,child_name,postcode,date_of_birth,service,consent\r\n"
           f"FAM-1,{ANN},Ann Okafor,SW9 8AB,2021-03-14,baby_steps,Y\r\n"
           f"FAM-1,{BEN},Ben Okafor,SW9 8AB,2023-07-02,family_nurse,Y\r\n")
NURSERY = ("child_ref,child_name,postcode,date_of_birth,score,consent\r\n"
           "N-100,Ann Okafor,SW9 8AB,2021-03-14,45,Y\r\n"   # Ann, with no identifier in common
           "N-200,Benjamin Okafor,SW9 8AB,2023-02-07,30,Y\r\n")  # Ben: formal name, day and month swapped


@pytest.fixture
def api(app_env, storage, tmp_path: Path, monkeypatch):
    policy_file = tmp_path / "identity.yaml"
    policy_file.write_text(POLICY)
    app_env(policy_file)
    return http_api(monkeypatch)


def trust_file(tmp_path: Path) -> bytes:
    """The trust's extract, tokenised on its own machine with the source tool and the programme source key."""
    raw, tokenised = tmp_path / "visits.csv", tmp_path / "visits-tokenised.csv"
    raw.write_text(f"nhs_token,visit\n{ANN},new_birth\n{BEN},one_year\n")
    counts = tokenise_file(raw, tokenised, ["nhs_token"], SourceTokens(source_key(TEST_ROOT_KEY)))
    assert counts == {"tokenised": 2, "blank": 0, "names": 0}
    assert ANN not in tokenised.read_text(), "the NHS number never leaves the trust"
    return tokenised.read_bytes()


def ingest_all(storage, tmp_path: Path) -> None:
    upload(storage, "charity", "sessions/march.csv", CHARITY.encode())
    upload(storage, "nursery", "assessments/march.csv", NURSERY.encode())
    upload(storage, "trust", "visits/march.csv", trust_file(tmp_path))
    deliver_all(storage)


def persons(storage) -> list[list[str]]:
    """The index's persons, each as the sorted datasets of its records."""
    index = person_index(storage)
    index.ensure_linked()
    people = index.person_map()
    grouped: dict[str, list[str]] = {}
    for record in index_records(storage):
        grouped.setdefault(people[record["record"]], []).append(record["dataset"])
    return sorted(sorted(datasets) for datasets in grouped.values())


def request(api, kind: str, identifiers: list[dict], **extra) -> dict:
    return rights_request(api, DPO, kind, identifiers, **extra)


def finish(api, storage, request_id: str) -> dict:
    return finished_request(api, storage, DPO, request_id)


def pack_rows(done: dict) -> dict[str, list[dict]]:
    with urllib.request.urlopen(done["result"]["link"]) as response:  # noqa: S310 - a local Azurite link
        pack = zipfile.ZipFile(io.BytesIO(response.read()))
    return {name: json.loads(pack.read(name)) for name in pack.namelist() if name.endswith(".json")
            and name != "summary.json"}


def test_siblings_with_one_family_reference_stay_two_people(api, storage, tmp_path):
    ingest_all(storage, tmp_path)
    ann = finish(api, storage, request(api, "access", [{"type": "nhs_number", "value": ANN}])["id"])
    held = pack_rows(ann)
    assert [row["service"] for row in held["charity-sessions.json"]] == ["baby_steps"], "Ben's session is not Ann's"
    assert [row["score"] for row in held["nursery-assessments.json"]] == [45]
    with urllib.request.urlopen(ann["result"]["link"]) as response:  # noqa: S310 - a local Azurite link
        summary = json.loads(zipfile.ZipFile(io.BytesIO(response.read())).read("summary.json"))
    months = {m for dataset in summary["datasets"] for m in dataset["kept_until_end_of"]}
    assert months and all(len(m) == 7 and m[4] == "-" for m in months), "each purge month, never None"

    erased = finish(api, storage, request(api, "erasure", [{"type": "nhs_number", "value": ANN}])["id"])
    assert erased["result"]["erased"] == {"sessions": 1, "assessments": 1, "visits": 1}
    left = curated_rows(storage)
    assert sorted(r.get("service") or r.get("visit") or str(r.get("score")) for r in left) == [
        "30", "family_nurse", "one_year"], "Ben's rows stay, in every service"

    upload(storage, "charity", "sessions/april.csv", CHARITY.encode())
    deliver_all(storage)
    april = json.loads(storage.platform_blob(RECEIPTS, _receipt_for(storage, "sessions/april.csv")).download_blob()
                       .readall())
    assert april["rows"]["suppressed"] == 1 and april["rows"]["stored"] == 1, "only Ann is dropped, never Ben"


def _receipt_for(storage, blob: str) -> str:
    """The newest receipt for an upload of this name, as receipts show names (april.csv: withheld, April is a name)."""
    from shared.ingest.names import shown_name

    container = storage.platform_container(RECEIPTS)
    found = [(receipt["received_at"], item.name) for item in container.list_blobs()
             if (receipt := json.loads(container.download_blob(item.name).readall()))["file"]
             == shown_name(blob, [blob.split("/")[0]])]
    if not found:
        raise AssertionError(f"no receipt for {blob}")
    return max(found)[1]


def test_services_meet_without_a_shared_identifier_and_trust_tokens_meet_nhs_numbers(api, storage, tmp_path):
    ingest_all(storage, tmp_path)
    assert persons(storage) == [["assessments", "sessions", "visits"], ["assessments", "sessions", "visits"]]


def test_a_request_by_name_date_of_birth_and_postcode_alone_finds_the_person(api, storage, tmp_path, all_logs):
    ingest_all(storage, tmp_path)
    typed = {"type": "name", "name": "Ben Okafor", "date_of_birth": "2023-07-02", "postcode": "sw9 8ab"}
    done = finish(api, storage, request(api, "access", [typed])["id"])
    held = pack_rows(done)
    assert [row["service"] for row in held["charity-sessions.json"]] == ["family_nurse"]
    assert [row["score"] for row in held["nursery-assessments.json"]] == [30]
    assert [row["visit"] for row in held["trust-visits.json"]] == ["one_year"]
    stored = everything_stored(storage) + all_logs.text
    assert "Okafor" not in stored and "2023-07-02" not in stored, "what was typed is never kept"


def test_no_name_date_of_birth_or_match_key_outside_the_linkage_store(api, storage, tmp_path, all_logs):
    ingest_all(storage, tmp_path)
    person_index(storage).ensure_linked()
    records = index_records(storage)
    tokens = {record[name] for record in records for name in ("first_name", "surname", "date_of_birth") if record[name]}
    tokens |= {key for record in records for key in record["strong_keys"] or []}
    assert tokens, "the linkage store holds match keys"
    outside = everything_stored(storage, leave_out=(LINKAGE,)) + all_logs.text
    for secret in [*tokens, "Okafor", "Benjamin", "2021-03-14", "SW9 8AB", ANN, BEN]:
        assert secret not in outside


def test_a_conflict_goes_to_review_and_a_decision_survives_relinking(api, storage, tmp_path):
    """One child's rows under two NHS numbers (a keying error): never merged by the model, flagged for review;
    once a reviewer accepts the pair it is one person, and later runs keep it so."""
    typo = ("family_ref,nhs_number,child_name,postcode,date_of_birth,service,consent\r\n"
            f"FAM-9,{ANN},Cara Mensah,SE11 4AA,2022-05-20,baby_steps,Y\r\n")
    other = ("child_ref,child_name,postcode,date_of_birth,score,consent\r\n"
             "N-900,Cara Mensah,SE11 4AA,2022-05-20,50,Y\r\n")
    upload(storage, "charity", "sessions/one.csv", typo.encode())
    upload(storage, "charity", "sessions/two.csv", typo.replace(ANN, BEN).replace("baby_steps", "family_nurse")
           .encode())
    upload(storage, "nursery", "assessments/one.csv", other.encode())
    deliver_all(storage)

    status, queue, _ = api("GET", "identity/reviews", DPO)
    assert status == 200
    [conflict] = [item for item in queue["items"] if item["kind"] == "conflict"]
    assert conflict["reason"] == "two different NHS numbers"
    assert set(conflict["agreement"].values()) <= {"exact", "sector", "district", "formal form", "sound",
                                                   "day and month swapped", "same month", "different", "missing"}
    assert "Mensah" not in json.dumps(queue)

    status, decided, _ = api("POST", f"identity/reviews/{conflict['id']}", DPO, {"decision": "accept"})
    assert status == 200 and decided["status"] == "accepted"
    status, _, _ = api("POST", f"identity/reviews/{conflict['id']}", DPO, {"decision": "reject"})
    assert status == 409, "a decision is made once"

    upload(storage, "nursery", "assessments/two.csv", other.replace("50,Y", "55,Y").encode())
    deliver_all(storage)
    status, queue, _ = api("GET", "identity/reviews", DPO)
    assert not [item for item in queue["items"] if item["kind"] == "conflict"], "the decision holds"
    assert sorted(map(len, persons(storage))) == [4], "one person: both charity rows, both nursery rows"


def test_an_analyst_cannot_see_the_review_queue(api, storage):
    status, _, _ = api("GET", "identity/reviews", ANALYST)
    assert status == 403


def test_the_source_tool_runs_as_a_trust_would_run_it(tmp_path):
    from shared.identity import source

    key_file = tmp_path / "source.key"
    key_file.write_text(base64.b64encode(source_key(TEST_ROOT_KEY)).decode())
    raw, out = tmp_path / "in.csv", tmp_path / "out.csv"
    raw.write_text(f"nhs_number,visit\n{ANN[:3]} {ANN[3:6]} {ANN[6:]},x\n9434765910,y\n")
    assert source.main(["--key-file", str(key_file), "--column", "nhs_number", str(raw), str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["nhs_number"] == SourceTokens(source_key(TEST_ROOT_KEY)).token(ANN)
    assert rows[1]["nhs_number"] == "", "a number failing its check digit is left blank, never echoed"


def test_logs_name_no_one(api, storage, tmp_path, all_logs):
    all_logs.set_level(logging.DEBUG)
    ingest_all(storage, tmp_path)
    person_index(storage).link()
    for secret in ("Okafor", "2021-03-14", ANN, "SW9 8AB"):
        assert secret not in all_logs.text


def test_match_keys_agree_on_what_services_write_differently():
    """Zoë and ZOE are one name, Bob is a form of Robert, 03/04 swapped is caught; twins' names are not."""
    from datetime import date

    from shared.identity.matchkeys import Identity, MatchKeys, identity_from

    keys = MatchKeys(TEST_ROOT_KEY)
    zoe = keys.tokens(identity_from({"full_name": "Zoë Smith-Jones", "date_of_birth": date(2021, 3, 4)}))
    upper = keys.tokens(identity_from({"full_name": "ZOE  smith-jones", "date_of_birth": date(2021, 4, 3)}))
    assert zoe["first_name"] == upper["first_name"] and zoe["surname"] == upper["surname"]
    assert zoe["date_of_birth"] == upper["dob_swapped"], "day and month swapped is one comparison level"
    bob = keys.tokens(Identity("bob", "okafor"))["first_forms"]
    robert = keys.tokens(Identity("robert", "okafor"))["first_forms"]
    assert set(bob) & set(robert), "a nickname meets its formal name"
    ann, ben = (keys.tokens(Identity(name, "okafor", date(2022, 1, 1)))["first_forms"] for name in ("ann", "ben"))
    assert not set(ann) & set(ben)
    assert keys.keys(Identity("ann", "okafor", None)) == {}, "no strong key without a date of birth"


ROTATED_KEY = bytes(range(100, 132))


def rotate(monkeypatch, keep_previous: bool) -> None:
    """The root key is rotated: a new version becomes current; the earlier one is still read, or no longer."""
    from shared import runtime

    monkeypatch.setenv("FDP_LOCAL_ROOT_KEY", base64.b64encode(ROTATED_KEY).decode())
    if keep_previous:
        monkeypatch.setenv("FDP_LOCAL_PREVIOUS_ROOT_KEYS", base64.b64encode(TEST_ROOT_KEY).decode())
    runtime.reset()


def test_a_request_after_a_key_rotation_finds_what_was_stored_before_it(api, storage, tmp_path, monkeypatch):
    upload(storage, "charity", "sessions/march.csv", CHARITY.encode())
    deliver_all(storage)
    rotate(monkeypatch, keep_previous=True)
    upload(storage, "charity", "sessions/april.csv", CHARITY.replace("baby_steps", "family_nurse").encode())
    deliver_all(storage)

    ann = finish(api, storage, request(api, "access", [{"type": "nhs_number", "value": ANN}])["id"])
    assert sorted(row["service"] for row in pack_rows(ann)["charity-sessions.json"]) == ["baby_steps",
                                                                                          "family_nurse"]
    assert ann["identifiers"] == ["the NHS number given"]

    erased = finish(api, storage, request(api, "erasure", [{"type": "nhs_number", "value": ANN}])["id"])
    assert erased["result"]["erased"] == {"sessions": 2}, "both sides of the rotation, one person"
    upload(storage, "charity", "sessions/may.csv", CHARITY.encode())
    deliver_all(storage)
    may = json.loads(storage.platform_blob(RECEIPTS, _receipt_for(storage, "sessions/may.csv")).download_blob()
                     .readall())
    assert may["rows"]["suppressed"] == 1, "an erasure holds across the rotation"


def test_without_the_earlier_key_a_request_after_rotation_finds_nothing_before_it(api, storage, monkeypatch):
    """Why the earlier version must stay readable until its data is gone: the check above can fail."""
    upload(storage, "charity", "sessions/march.csv", CHARITY.encode())
    deliver_all(storage)
    rotate(monkeypatch, keep_previous=False)
    done = finish(api, storage, request(api, "access", [{"type": "nhs_number", "value": ANN}])["id"])
    assert done["result"]["rows"] == 0


AMY, AVA = "9434765870", "9434765846"
"""Twins, Amy and Ava: one family, one birth date, one address; only the trust holds their NHS numbers."""
TWINS_CHARITY = ("family_ref,nhs_number,child_name,postcode,date_of_birth,service,consent\r\n"
                 "FAM-9,,Amy Mensah,SE5 9QT,2022-05-09,baby_steps,Y\r\n"
                 "FAM-9,,Ava Mensah,SE5 9QT,2022-05-09,family_nurse,Y\r\n")


def twins_trust_file(tmp_path: Path) -> bytes:
    """The trust's checks: NHS numbers and names both tokenised on its own machine; Ava's postcode not recorded."""
    from shared.identity.matchkeys import SourceNames

    raw, tokenised = tmp_path / "checks.csv", tmp_path / "checks-tokenised.csv"
    raw.write_text("nhs_token,first_name,surname,postcode,date_of_birth,visit\n"
                   f"{AMY},Amy,Mensah,SE5 9QT,09/05/2022,new_birth\n"
                   f"{AVA},Ava,Mensah,,09/05/2022,one_year\n")
    key = source_key(TEST_ROOT_KEY)
    counts = tokenise_file(raw, tokenised, ["nhs_token"], SourceTokens(key), names=["first_name", "surname"],
                           dob="date_of_birth", source_names=SourceNames(key))
    assert counts == {"tokenised": 2, "blank": 0, "names": 2}
    text = tokenised.read_text()
    assert "Amy" not in text and "Mensah" not in text, "no name leaves the trust"
    assert text.splitlines()[0] == "nhs_token,name_tokens,postcode,date_of_birth,visit"
    return tokenised.read_bytes()


def test_twins_stay_two_children_when_the_trust_tokenises_their_names(api, storage, tmp_path):
    """Twins share everything the trust sent before it could send names: a birth date and an address. The
    charity's rows carry no NHS number, and the trust did not record Ava's postcode: without names, the charity's
    Ava met the trust's Amy on birth date and postcode. Their names, tokenised at source, keep them apart."""
    upload(storage, "charity", "sessions/twins.csv", TWINS_CHARITY.encode())
    upload(storage, "trust", "checks/twins.csv", twins_trust_file(tmp_path))
    deliver_all(storage)
    assert persons(storage) == [["checks", "sessions"], ["checks", "sessions"]]
    amy = finish(api, storage, request(api, "access", [{"type": "nhs_number", "value": AMY}])["id"])
    held = pack_rows(amy)
    assert [row["service"] for row in held["charity-sessions.json"]] == ["baby_steps"]
    assert [row["visit"] for row in held["trust-checks.json"]] == ["new_birth"], "Ava's visit is not Amy's"


def test_a_name_sent_where_name_tokens_belong_is_refused_by_row_and_column(api, storage):
    upload(storage, "trust", "checks/oops.csv",
           b"nhs_token,name_tokens,postcode,date_of_birth,visit\n,Amy Mensah,SE5 9QT,2022-05-09,new_birth\n")
    deliver_all(storage)
    receipt = json.loads(storage.platform_blob(RECEIPTS, _receipt_for(storage, "checks/oops.csv")).download_blob()
                         .readall())
    assert receipt["rows"]["stored"] == 0
    assert [(e["row"], e["column"], e["rule"]) for e in receipt["errors"]] == [(2, "name_tokens", "match.name_tokens")]
    assert "Mensah" not in json.dumps(receipt)


def test_names_tokenised_at_source_meet_the_same_names_sent_plainly():
    from datetime import date

    from shared.identity.matchkeys import STRONG_KEYS, Identity, MatchKeys, SourceNames, parse_name_tokens

    keys = MatchKeys(TEST_ROOT_KEY)
    at_source = SourceNames(source_key(TEST_ROOT_KEY)).text("bob", "smith-jones", date(2022, 5, 9))
    arrived = Identity(born=date(2022, 5, 9), name_tokens=parse_name_tokens(at_source))
    plain = Identity("bob", "smith-jones", date(2022, 5, 9))
    assert keys.tokens(arrived) == keys.tokens(plain)
    assert {k: keys.keys(arrived)[k] for k in STRONG_KEYS} == {k: keys.keys(plain)[k] for k in STRONG_KEYS}
    assert not set(at_source.replace(";", ",").replace("=", ",").split(",")) & set(
        str(v) for v in keys.tokens(plain).values()), "a trust's tokens are never the stored ones"
