"""Issue 12, as a hostile partner would try it, against Azurite through the real SDK clients:

1. a file without a header row, named after a child: no cell of its first row and no name as given reaches a
   receipt, the ledger, the audit log, a log line or anything else stored;
2. a snapshot taken with the create-only link does not keep the raw file, and a blob type the pipeline does not
   read is refused (the lifecycle rule's part is in tests/infra/test_templates.py);
4. a delivery that paused after its checks never moves the ledger back from accepted;
5. a name with dot segments gets a receipt and the event completes, every time it is delivered;
8. rows left out for consent or opt-out are listed by row number, and a partner reads every receipt with its link.

Items 6 and 7 are in tests/test_retention_integrity.py and tests/test_resent_rows.py.
"""

from __future__ import annotations

import base64
import copy
import csv
import json
import time
import urllib.request
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from devtools import synthetic
from devtools.eventgrid import deliver_in_process, waiting_uploads
from shared.identity.keys import LocalKeySource
from shared.identity.pseudonymise import Pseudonymiser, normalise, scoped_type
from shared.identity.register import SuppressionRegister
from shared.ingest.events import parse_blob_created
from shared.ingest.names import FILE_WORDS, name_is_safe, shown_name
from shared.ingest.pipeline import IngestPipeline
from shared.platform.audit import AuditLog
from shared.platform.paging import PageRequest
from shared.platform.storage import AUDIT, REGISTER
from shared.policy.contracts import COLUMN_WORDS, describe_header, words_of
from shared.runtime import drop_zones
from tests.conftest import TEST_ROOT_KEY
from tests.helpers import (
    curated_files,
    curated_rows,
    deliver_all,
    everything_stored,
    http_api,
    ledger_rows,
    raw_blobs,
    receipts,
    upload,
)

CHARITY = "family-support-charity"
PERSONAL = ("child_name", "parent_name", "address", "child_postcode", "nhs_number", "family_ref")


def keys() -> LocalKeySource:
    return LocalKeySource(base64.b64encode(TEST_ROOT_KEY).decode())


def logs_of(all_logs) -> str:
    return "\n".join(record.getMessage() for record in all_logs.records)


def audit_text(storage) -> str:
    return json.dumps([entry.details for entry in AuditLog(storage.table(AUDIT)).entries()], default=str)


def link_for(partner: str) -> str:
    zones = drop_zones()
    zones.onboard(partner)
    return zones.issue_link(partner, days=1).url


def put_with_link(link: str, encoded_name: str, content: bytes) -> None:
    """A raw PUT Blob with the partner's link, as any HTTP client can send it (the name already percent-encoded)."""
    base, query = link.split("?", 1)
    request = urllib.request.Request(f"{base}/{encoded_name}?{query}", data=content, method="PUT",  # noqa: S310
                                     headers={"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06"})
    with urllib.request.urlopen(request) as response:  # noqa: S310 - a local Azurite URL
        assert response.status == 201


# 1. A file without a header row, named after a child ---------------------------------------------------------


def test_a_file_without_a_header_row_and_named_after_a_child_leaves_neither_anywhere(app_env, storage, all_logs):
    policy = app_env("leap")
    file = synthetic.generate(policy, CHARITY, "sessions", rows=6, seed=12)
    headerless = file.content.decode().split("\r\n", 1)[1].encode()  # the first data row stands where the header was
    first = file.rows[0]
    child = first["child_name"]
    blob = f"sessions/{child}.csv"  # the partner named the file after the child
    upload(storage, CHARITY, blob, headerless)
    deliver_all(storage)

    [receipt] = receipts(storage)
    assert receipt["status"] == "rejected"
    columns = [p["column"] for p in receipt["rejection"] if p["rule"] == "header.not_in_contract"]
    assert columns and all(column.startswith("column ") for column in columns), columns
    assert receipt["file"] == "sessions/[name withheld].csv"
    assert receipt["size_bytes"] == len(headerless) and receipt["received_at"]

    secrets = {first[name] for name in PERSONAL if len(first.get(name, "")) > 3} | {child, *child.split()}
    assert len(secrets) >= 6
    places = {"receipt": json.dumps(receipt), "ledger": json.dumps(ledger_rows(storage), default=str),
              "audit": audit_text(storage), "logs": logs_of(all_logs), "stored": everything_stored(storage),
              "uploads": json.dumps(drop_zones().uploads(CHARITY, PageRequest("partner-uploads")))}
    leaks = {(where, secret) for where, text in places.items() for secret in secrets if secret in text}
    assert leaks == set(), "partner text reached storage, the audit log or a log line"


@pytest.mark.parametrize(("header", "shown"), [
    ("Oliver Okafor", "column 3"),              # a child's name
    ("9434765919", "column 3"),                 # an NHS number
    ("SW9 8AB", "column 3"),                    # a postcode
    ("2015-03-12", "column 3"),                 # a date of birth
    ("jo.bloggs@example.org", "column 3"),      # an email address
    ("Acre Lane", "column 3"),                  # an address
    ("Grace", "column 3"),                      # one word, a given name
    ("chess", "column 3"),                      # a value from an agreed list: still data, not a column name
    ("child_name", "child_name"),               # a column name, only not in this agreement
    ("DateOfBirth", "DateOfBirth"),
    ("Address Line 2", "Address Line 2"),
    ("NHSNumber", "NHSNumber"),
    ("Consent", "consent"),                     # a name the agreement knows, as the agreement spells it
])
def test_a_header_is_named_only_by_the_agreement_or_a_strict_rule(app_env, header, shown):
    contract = app_env("leap").partners[CHARITY].datasets["sessions"].contract
    assert describe_header(header, 3, contract) == shown


def test_no_word_a_receipt_may_show_is_a_name():
    """The words that let a header or a file name be shown are checked against every given name the nicknames
    package knows, the synthetic generator's names and a list of names that are also words."""
    import nicknames

    with open(Path(nicknames.__file__).parent / "names.csv") as listed:
        names = {cell.strip().lower() for row in csv.reader(listed) for cell in row}
    names |= {name.lower() for name in synthetic.FIRST_NAMES + synthetic.LAST_NAMES}
    names |= words_of("april may june august summer autumn winter grace hope rose will mark faith joy dawn jan day "
                      "ward hall young king green white brown black long price bell wood baker carter mason")
    assert (COLUMN_WORDS | FILE_WORDS) & names == set()


@pytest.mark.parametrize(("name", "shown"), [
    ("sessions/20251003T102233-october-sessions.csv", None),  # the upload page's own names
    ("sessions/2025-10 export v2.xlsx", None),
    ("sessions/Q3 2024 final (copy).csv", None),
    ("sessions/oliver-okafor.csv", "sessions/[name withheld].csv"),
    ("sessions/Okafor_O.csv", "sessions/[name withheld].csv"),
    ("sessions/9434765919.csv", "sessions/[name withheld].csv"),
    ("sessions/A208600012345.xlsx", "sessions/[name withheld].xlsx"),
    ("sessions/june.csv", "sessions/[name withheld].csv"),
    ("Oliver/sessions.csv", "[name withheld].csv"),
    ("sessions/bluebell", "sessions/[name withheld]"),
])
def test_a_file_name_is_shown_only_where_it_passes_the_strict_rule(name, shown):
    assert shown_name(name, ["sessions"]) == (shown or name)
    assert name_is_safe(name, ["sessions"]) == (shown is None)


# 2. Snapshots and blob types a create-only link can make --------------------------------------------------


def test_a_snapshot_taken_with_the_upload_link_does_not_keep_the_raw_file(app_env, storage):
    policy = app_env("leap")
    link = link_for(CHARITY)
    file = synthetic.generate(policy, CHARITY, "sessions", rows=5, seed=4)
    blob = ContainerClient.from_container_url(link).get_blob_client(file.blob_name)
    blob.upload_blob(file.content)
    blob.create_snapshot()  # a create-only link may: Azure counts a snapshot as creating
    zone = storage.drop_zone(f"drop-{CHARITY}")
    assert len(list(zone.list_blobs(include=["snapshots"]))) == 2

    deliver_all(storage)
    assert list(zone.list_blobs(include=["snapshots"])) == [], "the raw file and its snapshot are deleted"
    assert receipts(storage)[0]["status"] == "accepted"


def test_a_page_blob_made_with_the_link_is_refused_and_deleted(app_env, storage):
    app_env("leap")
    link = link_for(CHARITY)
    ContainerClient.from_container_url(link).get_blob_client("sessions/pages.csv").create_page_blob(1024 * 1024)
    deliver_all(storage)
    [receipt] = receipts(storage)
    assert receipt["status"] == "rejected" and receipt["rejection"][0]["rule"] == "upload.blob_type"
    assert raw_blobs(storage) == []


# 4. The ledger never goes back ------------------------------------------------------------------------------


class _PausingBlob:
    """A raw blob client whose properties call lets another delivery run to the end before it returns."""

    def __init__(self, blob, after) -> None:
        self._blob, self._after = blob, after

    def get_blob_properties(self, *args, **kwargs):
        properties = self._blob.get_blob_properties(*args, **kwargs)
        self._after()
        return properties

    def __getattr__(self, name):
        return getattr(self._blob, name)


def test_a_delivery_that_paused_after_its_checks_never_moves_the_ledger_back(app_env, storage):
    from tests.test_crash_safety import assert_exactly_once, reference_run

    policy, _ = reference_run(app_env, storage, invalid_rate=0)
    [event] = [parse_blob_created(e["eventType"], e["subject"], e["data"]) for e in waiting_uploads(storage)]
    other = IngestPipeline(policy, storage, keys())
    paused_storage = copy.copy(storage)
    ran: list[str] = []

    def the_other_delivery_finishes() -> None:
        if not ran:
            ran.append(other.handle(event).status)

    paused_storage.raw_blob = lambda container, name: _PausingBlob(storage.raw_blob(container, name),
                                                                    the_other_delivery_finishes)
    paused = IngestPipeline(policy, paused_storage, keys())
    outcome = paused.handle(event)  # checks the ledger (nothing yet) and the blob, then the other one finishes

    assert ran == ["accepted"] and outcome.status == "duplicate"
    [row] = ledger_rows(storage)
    assert row["status"] == "accepted", "a final ledger row is never overwritten"
    assert_exactly_once(storage, len(curated_rows(storage)), curated_files(storage))


# 5. Names the platform cannot process ------------------------------------------------------------------------


@pytest.mark.parametrize("encoded", ["sessions/%2E%2E/Oliver-Okafor.csv", "sessions/%2e/Oliver-Okafor.csv",
                                     "%2E%2E/Oliver-Okafor.csv"])
def test_a_name_with_dot_segments_gets_a_receipt_and_its_event_completes(app_env, storage, all_logs, encoded):
    policy = app_env("leap")
    link = link_for(CHARITY)
    put_with_link(link, encoded, synthetic.generate(policy, CHARITY, "sessions", rows=3).content)
    events = waiting_uploads(storage)
    assert len(events) == 1 and "Oliver-Okafor" in events[0]["subject"]

    for _ in range(2):  # the first delivery and a duplicate: neither raises, so Event Grid sees both complete
        deliver_in_process(events[0])
    [receipt] = receipts(storage)
    assert receipt["status"] == "rejected" and receipt["rejection"][0]["rule"] == "upload.name"
    assert "Oliver" not in json.dumps(receipt)
    assert [row["status"] for row in ledger_rows(storage)] == ["rejected"]
    assert [e.action for e in AuditLog(storage.table(AUDIT)).entries()].count("ingest.rejected") == 1
    assert curated_rows(storage) == []
    assert "Oliver" not in logs_of(all_logs) + json.dumps(ledger_rows(storage), default=str)
    assert len(raw_blobs(storage)) == 1, "no request can address it: the lifecycle rule deletes it within 7 days"


# 8. Receipts tell the whole story ---------------------------------------------------------------------------


@pytest.mark.parametrize(("policy_name", "partner", "dataset", "reader"), [
    ("leap", CHARITY, "sessions", "rows"),                       # an address over two lines: the row path
    ("leap", CHARITY, "sessions", "columnar"),                   # names matched on the columnar path
    ("thrive-at-five", "school-north", "early-years", "columnar"),  # plain CSV: the columnar path
])
def test_rows_left_out_for_consent_or_opt_out_are_listed_by_row_number(app_env, storage, all_logs, policy_name,
                                                                       partner, dataset, reader):
    policy = app_env(policy_name)
    file = synthetic.generate(policy, partner, dataset, rows=30, seed=8)
    contract = policy.partners[partner].datasets[dataset].contract
    identifier = next(c for c in contract.identifiers if c.names_a_person)
    lines = file.content.decode().split("\r\n")
    consent = lines[0].split(",").index("consent")
    no_consent = [4, 9, 17]
    for number in range(2, len(file.rows) + 2):
        cells = lines[number - 1].split(",")
        cells[consent] = "N" if number in no_consent else "Y"
        if reader == "rows" and number == 2:
            cells[lines[0].split(",").index("address")] = '"Flat 2\nRailton Road"'
        lines[number - 1] = ",".join(cells)
    held = [n for n in range(2, len(file.rows) + 2) if n not in no_consent and file.rows[n - 2][identifier.name]]
    chosen = {file.rows[n - 2][identifier.name] for n in (held[3], held[15])}
    opted_out = [n for n in held if file.rows[n - 2][identifier.name] in chosen]
    register = SuppressionRegister(storage.table(REGISTER))
    pseudonymiser = Pseudonymiser(TEST_ROOT_KEY)
    for value in chosen:
        register.add(pseudonymiser.pseudonym(scoped_type(identifier.id_type or "", partner),
                                             normalise(identifier.id_type or "", value)), "all", "erasure test")
    upload(storage, partner, file.blob_name, "\r\n".join(lines).encode())
    deliver_all(storage)

    [receipt] = receipts(storage)
    assert receipt["rows"]["no_consent"] == 3 and receipt["rows"]["suppressed"] == len(opted_out) >= 2
    assert receipt["left_out"]["no_consent"]["rows"] == no_consent
    assert receipt["left_out"]["suppressed"]["rows"] == opted_out
    assert receipt["left_out"]["suppressed"]["total"] == len(opted_out) and receipt["left_out"]["suppressed"]["message"]
    assert "3 without consent" in receipt["message"]
    assert f"{len(opted_out)} of people who opted out" in receipt["message"]
    assert f"path={reader}" in logs_of(all_logs)
    values = {v for number in no_consent + opted_out for v in file.rows[number - 2].values() if len(v) > 5}
    assert not [v for v in values if v in json.dumps(receipt)], "rows are listed by number, never by value"


def test_a_partner_who_uploaded_with_azcopy_reads_every_receipt_with_its_link(app_env, storage, monkeypatch):
    policy = app_env("leap")
    api = http_api(monkeypatch)
    link = link_for(CHARITY)
    zone = ContainerClient.from_container_url(link)  # what AzCopy and Storage Explorer do with the link
    for seed, name in ((1, "sessions/september.csv"), (2, "sessions/Oliver Okafor.csv")):
        zone.upload_blob(name, synthetic.generate(policy, CHARITY, "sessions", rows=4, seed=seed).content)
        deliver_all(storage)
        time.sleep(1.1)  # receipts are listed by the time of upload, kept to the second

    status, found, _ = api("POST", "upload/receipts", {}, {"link": link})
    assert status == 200 and found["partner"] == CHARITY
    assert [u["file"] for u in found["uploads"]] == ["sessions/[name withheld].csv", "sessions/september.csv"]
    assert all(u["receipt"]["status"] == "accepted" and u["size_bytes"] for u in found["uploads"])
    assert "Oliver" not in json.dumps(found)

    earlier = found["uploads"][1]["ingest_id"]
    status, again, _ = api("POST", "upload/receipts", {}, {"link": link, "ingest_id": earlier})
    assert status == 200 and again["uploads"][0]["receipt"]["ingest_id"] == earlier
    status, page, _ = api("POST", "upload/receipts", {}, {"link": link, "limit": 1})
    assert len(page["uploads"]) == 1 and page["next_before"]
    status, rest, _ = api("POST", "upload/receipts", {}, {"link": link, "limit": 1, "before": page["next_before"]})
    assert [u["ingest_id"] for u in rest["uploads"]] == [earlier]

    assert api("POST", "upload/receipts", {}, {"link": link, "ingest_id": "0" * 32})[0] == 404
    assert api("POST", "upload/receipts", {}, {"link": link.replace("sig=", "sig=x")})[0] == 401
    drop_zones().revoke(CHARITY)
    assert api("POST", "upload/receipts", {}, {"link": link})[0] == 401, "a revoked link reads nothing"
