"""Partner drop zones through the HTTP admin functions, against Azurite: onboarding, create-only upload links,
revocation, the uploads listing, and authorisation of every call.

Azurite note: the service lets a create-only (c) SAS stage and commit blocks since REST 2026-04-06; the pinned
Azurite is patched at install to apply that documented rule (devtools/azurite-create-permission.js)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient

from devtools import synthetic
from devtools.localhost import http_routes
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT
from tests.helpers import ADMIN, ANALYST, deliver_all, http_api

PARTNER = "family-support-charity"


@pytest.fixture
def api(app_env, monkeypatch):
    """The app's HTTP functions, called as the host would, with App Service authentication on."""
    policy = app_env("leap")
    call = http_api(monkeypatch)
    call.policy = policy
    return call


def onboard_and_link(api, partner: str = PARTNER, **body) -> str:
    assert api("PUT", f"partners/{partner}", ADMIN)[0] == 200
    status, link, _ = api("POST", f"partners/{partner}/links", ADMIN, body or None)
    assert status == 201
    page, fragment = link["upload_page"].split("#", 1)
    assert page == "http://localhost/api/upload" and parse_qs(fragment)["link"] == [link["url"]], \
        "the admin sends the partner the page with the link in it, not a raw storage URL"
    return link["url"]


def container(url: str) -> ContainerClient:
    return ContainerClient.from_container_url(url, max_block_size=4 * 1024 * 1024, max_single_put_size=4 * 1024 * 1024)


def refused(action) -> bool:
    try:
        action()
    except HttpResponseError as error:
        return error.status_code in (403, 404, 409)
    return False


def test_onboarding_is_idempotent_and_names_the_datasets(api, storage):
    status, first, _ = api("PUT", f"partners/{PARTNER}", ADMIN)
    assert status == 200 and first["created"] and first["container"] == f"drop-{PARTNER}"
    assert first["datasets"] == ["sessions"]
    status, again, _ = api("PUT", f"partners/{PARTNER}", ADMIN)
    assert status == 200 and not again["created"] and again["link_generation"] == first["link_generation"]
    assert api("PUT", "partners/not-in-policy", ADMIN)[0] == 404


def test_the_upload_page_lists_datasets_by_their_labels(api, storage):
    """A partner picks "Parenting and family support sessions", not the folder name `sessions`."""
    status, checked, _ = api("POST", "upload/check", None, {"link": onboard_and_link(api)})
    assert status == 200 and checked["name"] == api.policy.partners[PARTNER].name
    assert checked["datasets"] == [{"name": "sessions", "label": "Parenting and family support sessions"}]


def test_a_link_uploads_a_large_file_in_blocks_and_can_do_nothing_else(api, storage):
    url = onboard_and_link(api)
    zone = container(url)
    zone.upload_blob("sessions/large.csv", b"x" * (100 * 1024 * 1024))  # 100 MB, 25 blocks of 4 MB
    uploaded = storage.raw_blob(f"drop-{PARTNER}", "sessions/large.csv").get_blob_properties()
    assert uploaded.size == 100 * 1024 * 1024
    assert storage.raw_blob(f"drop-{PARTNER}", "sessions/large.csv").get_block_list()[0], "committed from blocks"

    assert refused(lambda: zone.download_blob("sessions/large.csv").readall()), "read"
    assert refused(lambda: list(zone.list_blobs())), "list"
    assert refused(lambda: zone.delete_blob("sessions/large.csv")), "delete"
    assert refused(lambda: zone.upload_blob("sessions/large.csv", b"replaced", overwrite=True)), "overwrite"
    assert refused(lambda: zone.upload_blob("sessions/large.csv", b"y" * (9 * 1024 * 1024), overwrite=True))
    assert storage.raw_blob(f"drop-{PARTNER}", "sessions/large.csv").get_blob_properties().size == 100 * 1024 * 1024
    api("PUT", "partners/nhs-community-health", ADMIN)
    other = container(url.replace(f"drop-{PARTNER}", "drop-nhs-community-health"))
    assert refused(lambda: other.upload_blob("health-visits/x.csv", b"x")), "another partner's zone"


def test_revocation_stops_old_links_at_once_and_new_links_work(api, storage):
    old = onboard_and_link(api)
    container(old).upload_blob("sessions/before.csv", b"a")
    status, revoked, _ = api("DELETE", f"partners/{PARTNER}/links", ADMIN)
    assert status == 200 and revoked["revoked"]
    assert refused(lambda: container(old).upload_blob("sessions/after.csv", b"b"))
    status, fresh, _ = api("POST", f"partners/{PARTNER}/links", ADMIN)
    container(fresh["url"]).upload_blob("sessions/after.csv", b"b")


def test_link_expiry_is_bounded_by_the_policy(api, storage):
    api("PUT", f"partners/{PARTNER}", ADMIN)
    status, problem, response = api("POST", f"partners/{PARTNER}/links", ADMIN, {"expiry_days": 30})
    assert status == 400 and problem["rule"] == "link.expiry" and "7" in problem["detail"]
    assert response.mimetype == "application/problem+json"
    status, link, _ = api("POST", f"partners/{PARTNER}/links", ADMIN, {"expiry_days": 2})
    assert status == 201 and "se=" in link["url"] and "sp=" not in link["url"], "permissions live in the policy"


def test_links_are_never_stored_or_logged(api, storage, all_logs):
    url = onboard_and_link(api)
    signature = url.split("sig=")[1]
    stored = json.dumps([dict(e.__dict__) for e in AuditLog(storage.table(AUDIT)).entries()], default=str)
    logs = "\n".join(record.getMessage() for record in all_logs.records)
    assert signature not in stored and signature not in logs


def test_uploads_listing_shows_status_and_receipt(api, storage):
    url = onboard_and_link(api)
    file = synthetic.generate(api.policy, PARTNER, "sessions", rows=20, seed=2, invalid_rate=0.2)
    container(url).upload_blob(file.blob_name, file.content)
    deliver_all(storage)
    status, body, _ = api("GET", f"partners/{PARTNER}/uploads", ADMIN)
    [upload] = body["items"]
    assert status == 200 and upload["file"] == file.blob_name
    receipt = upload["receipt"]
    assert upload["status"] == receipt["status"] == "accepted_with_errors", "the list says what the receipt says"
    assert receipt["rows"]["read"] == 20 and receipt["errors"]
    assert {"row", "column", "rule", "message"} == set(receipt["errors"][0])


@pytest.mark.parametrize(("method", "path"), [("PUT", f"partners/{PARTNER}"), ("POST", f"partners/{PARTNER}/links"),
                                              ("DELETE", f"partners/{PARTNER}/links"),
                                              ("GET", f"partners/{PARTNER}/uploads")])
def test_every_admin_call_needs_a_principal_and_the_admin_role(api, storage, method, path):
    status, problem, response = api(method, path)
    assert status == 401 and problem["status"] == 401 and problem["title"] == "Unauthorized"
    assert response.mimetype == "application/problem+json"
    assert api(method, path, ANALYST)[0] == 403


def test_a_forged_principal_is_ignored_while_app_service_authentication_is_off(api, storage, monkeypatch):
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "False")
    assert api("PUT", f"partners/{PARTNER}", ADMIN)[0] == 401
    monkeypatch.setenv("FDP_LOCAL_AUTH", "trust-principal-header")
    assert api("PUT", f"partners/{PARTNER}", ADMIN)[0] == 200, "the explicit local-development mode"
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "in-azure")
    status, problem, _ = api("PUT", f"partners/{PARTNER}", ADMIN)
    assert status == 500 and "misconfigured" in problem["detail"], "local mode is refused in Azure"


def test_every_admin_call_is_audited(api, storage):
    api("PUT", f"partners/{PARTNER}", ADMIN)
    api("PUT", f"partners/{PARTNER}", ANALYST)
    api("GET", f"partners/{PARTNER}/uploads")
    entries = [e for e in AuditLog(storage.table(AUDIT)).entries() if e.action.startswith("admin.")]
    assert [(e.action, e.actor, e.details["status"]) for e in entries] == [
        ("admin.partner.onboard", "admin-object-id", 200), ("admin.partner.onboard", "analyst-object-id", 403),
        ("admin.partner.uploads", "unauthenticated", 401)]
    assert AuditLog(storage.table(AUDIT)).verify().ok


def test_admin_functions_need_a_function_key_and_the_page_does_not():
    levels = {route.name: route.auth_level for route in http_routes()}
    assert {levels[n] for n in levels if n.startswith("partner_")} == {"FUNCTION"}
    assert {levels[n] for n in levels if n.startswith("upload_")} == {"ANONYMOUS"}
