"""The operators' lists through the HTTP functions, against Azurite: partners with their live links, uploads across
partners, rights requests with overdue ones first, holds; and the one paging shape they all share
(`?limit=&page=` answering `{"items", "next"}`), with bad paging answered as a problem document."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import pytest

from devtools import synthetic
from shared.platform.storage import REQUESTS
from shared.rights.requests import RECEIVED, RequestRegister, RightsRequest
from tests.helpers import ADMIN, DPO, deliver_all, http_api, upload

CHARITY, HEALTH = "family-support-charity", "nhs-community-health"


@pytest.fixture
def api(app_env, monkeypatch):
    call = http_api(monkeypatch)
    call.policy = app_env("leap")
    return call


def every_page(api, path: str, caller: dict, limit: int) -> list[list[dict]]:
    """Follow `next` from the first page to the last, as the console does."""
    pages, token = [], None
    while True:
        joiner = "&" if "?" in path else "?"
        status, body, _ = api("GET", f"{path}{joiner}limit={limit}" + (f"&page={token}" if token else ""), caller)
        assert status == 200, body
        assert set(body) == {"items", "next"}
        pages.append(body["items"])
        token = body["next"]
        if token is None:
            return pages


def seed_request(storage, received: date, kind: str = "access") -> str:
    """A request received on a given day, as the register holds it (no identifiers needed to list it)."""
    register = RequestRegister(storage.table(REQUESTS))
    request = RightsRequest(id=register.new_id(), type=kind, status=RECEIVED, received=received,
                            created_by="dpo-object-id", given=[{"pseudonym": "p", "label": "NHS number"}])
    register.save(request)
    return request.id


def test_open_requests_page_through_overdue_first(api, storage):
    today = date.today()
    overdue = seed_request(storage, today - timedelta(days=45))
    due_soon = seed_request(storage, today - timedelta(days=24), "erasure")
    # A week apart: a due date moves to the next working day, so requests a day apart can share one.
    fresh = [seed_request(storage, today - timedelta(days=n)) for n in (17, 10, 3)]
    pages = every_page(api, "requests?status=open", DPO, limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [item for page in pages for item in page]
    assert [item["id"] for item in listed] == [overdue, due_soon, *fresh], "soonest due first, none repeated"
    assert listed[0]["days_left"] < 0 <= listed[1]["days_left"], "the overdue one leads, with days past due"
    assert "p" not in {label for item in listed for label in item["identifiers"]}, "labels, never pseudonyms"


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=ten", "limit=-1"])
def test_a_bad_limit_is_a_problem_naming_the_parameter(api, storage, query):
    status, problem, response = api("GET", f"requests?{query}", DPO)
    assert status == 400 and response.mimetype == "application/problem+json"
    assert problem["field"] == "limit" and problem["rule"] == "page.limit" and "200" in problem["detail"]


def test_a_token_that_is_not_this_lists_is_refused_without_echo(api, storage):
    for day in (1, 2, 3):
        seed_request(storage, date.today() - timedelta(days=day))
    token = api("GET", "requests?limit=1", DPO)[1]["next"]
    assert token
    for path in (f"identity/reviews?page={token}", "requests?page=not-a-token%21", f"retention/holds?page={token}"):
        caller = ADMIN if path.startswith("retention") else DPO
        status, problem, response = api("GET", path, caller)
        assert status == 400 and response.mimetype == "application/problem+json", path
        assert problem["field"] == "page" and problem["rule"] == "page.token"
        assert token not in json.dumps(problem) and "not-a-token" not in json.dumps(problem)


def test_holds_page_with_the_tables_continuation_token(api, storage):
    for number in range(5):
        assert api("POST", "retention/holds", ADMIN, {"dataset": "sessions", "reason": f"Claim {number}"})[0] == 201
    pages = every_page(api, "retention/holds", ADMIN, limit=2)
    reasons = sorted(hold["reason"] for page in pages for hold in page)
    assert reasons == [f"Claim {n}" for n in range(5)] and max(map(len, pages)) == 2


def test_partners_are_listed_with_live_links_and_never_a_link(api, storage):
    assert api("PUT", f"partners/{CHARITY}", ADMIN)[0] == 200
    issued = [api("POST", f"partners/{CHARITY}/links", ADMIN, {"expiry_days": days})[1] for days in (1, 3)]
    status, body, _ = api("GET", "partners", ADMIN)
    assert status == 200 and body["next"] is None
    partners = {partner["id"]: partner for partner in body["items"]}
    assert set(partners) == set(api.policy.partners)
    charity = partners[CHARITY]
    assert charity["name"] == api.policy.partners[CHARITY].name and charity["onboarded"]
    assert charity["datasets"][0]["id"] == "sessions"
    assert charity["links"] == {"issued": 2, "live_until": issued[1]["expires"]}, "the later expiry of the two"
    assert not partners[HEALTH]["onboarded"] and partners[HEALTH]["links"]["issued"] == 0
    text = json.dumps(body)
    assert "sig=" not in text and all(link["url"].split("sig=")[1] not in text for link in issued)

    api("DELETE", f"partners/{CHARITY}/links", ADMIN)
    charity = next(p for p in api("GET", "partners", ADMIN)[1]["items"] if p["id"] == CHARITY)
    assert charity["links"] == {"issued": 0, "live_until": None}, "revoked links are not live"
    assert charity["link_generation"] == 2


def test_uploads_across_partners_newest_first_with_their_receipts_status(api, storage):
    charity = synthetic.generate(api.policy, CHARITY, "sessions", rows=10, seed=1, invalid_rate=0.2)
    health = synthetic.generate(api.policy, HEALTH, "health-visits", rows=10, seed=2)
    upload(storage, CHARITY, charity.blob_name, charity.content)
    deliver_all(storage)
    time.sleep(1.1)  # storage stamps uploads to the second: the second upload is received a second later
    upload(storage, HEALTH, health.blob_name, health.content)
    deliver_all(storage)
    pages = every_page(api, "uploads", ADMIN, limit=1)
    listed = [item for page in pages for item in page]
    assert [u["partner"] for u in listed] == [HEALTH, CHARITY], "newest first"
    assert all(u["status"] == u["receipt"]["status"] for u in listed), "each says what its receipt says"
    assert listed[1]["status"] == "accepted_with_errors"
    assert listed[1]["partner_name"] == api.policy.partners[CHARITY].name
    assert listed[1]["receipt"]["status"] == "accepted_with_errors" and listed[1]["receipt"]["errors"]
    assert api("GET", "uploads", DPO)[0] == 403


@pytest.mark.parametrize("path", ["partners", "uploads", "reports", "extracts", f"partners/{CHARITY}/uploads"])
def test_the_new_lists_need_a_principal(api, storage, path):
    status, problem, response = api("GET", path)
    assert status == 401 and response.mimetype == "application/problem+json" and problem["status"] == 401


def test_a_request_added_between_pages_neither_repeats_nor_shifts_what_was_read(api, storage):
    today = date.today()
    first = [seed_request(storage, today - timedelta(days=n)) for n in (30, 20)]
    later = [seed_request(storage, today - timedelta(days=n)) for n in (10, 5)]
    page = api("GET", "requests?limit=2", DPO)[1]
    assert [item["id"] for item in page["items"]] == first
    seed_request(storage, today - timedelta(days=40))  # due before everything already shown
    rest = api("GET", f"requests?limit=2&page={page['next']}", DPO)[1]
    assert [item["id"] for item in rest["items"]] == later and rest["next"] is None
