"""HTTP functions for the breach register (UK GDPR Articles 33 and 34). A platform administrator or the data
protection officer may open a breach and read the register; the decisions (assessment, the reports to the ICO
and to the people affected, closing) and the affected partners' row references are the officer's alone.
Thin adapters over shared/rights/breaches.py; admin_call authorises and audits every call."""

import json

import azure.functions as func

from functions.http import admin_call, json_body
from shared.platform.auth import DATA_PROTECTION_OFFICER, PLATFORM_ADMIN, Problem
from shared.rights.breaches import PAGE_SIZE
from shared.runtime import breach_service

bp = func.Blueprint()

READERS = (PLATFORM_ADMIN, DATA_PROTECTION_OFFICER)
MAX_PAGE = 200


def _limit(req: func.HttpRequest) -> int:
    value = req.params.get("limit", str(PAGE_SIZE))
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise Problem(400, "Bad Request", f"limit must be a whole number from 1 to {MAX_PAGE}", field="limit",
                      rule="breaches.limit")
    return int(value)


@bp.function_name("breach_open")
@bp.route(route="breaches", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def open_breach(req: func.HttpRequest) -> func.HttpResponse:
    response = admin_call(req, READERS, "breach.open",
                          lambda caller: (201, breach_service().open(json_body(req), caller.id)))
    if response.status_code == 201:
        response.headers["Location"] = f"/api/breaches/{json.loads(response.get_body())['id']}"
    return response


@bp.function_name("breach_list")
@bp.route(route="breaches", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_breaches(req: func.HttpRequest) -> func.HttpResponse:
    # `page` is every list's parameter (shared/platform/paging.py); `next` is kept for callers written before it.
    token = req.params.get("page") or req.params.get("next")
    return admin_call(req, READERS, "breach.list", lambda caller: (200, breach_service().listed(
        req.params.get("status", "open"), token, _limit(req))))


@bp.function_name("breach_get")
@bp.route(route="breaches/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_breach(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, READERS, "breach.read",
                      lambda caller: (200, breach_service().view(req.route_params["id"])))


@bp.function_name("breach_affected")
@bp.route(route="breaches/{id}/affected", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def affected(req: func.HttpRequest) -> func.HttpResponse:
    """Counts per partner for anyone who may read the register; with ?partner=, that partner's own upload ids
    and row numbers, for the officer to pass to it."""
    partner = req.params.get("partner")
    if partner is None:
        return admin_call(req, READERS, "breach.affected",
                          lambda caller: (200, breach_service().affected(req.route_params["id"])))
    return admin_call(req, DATA_PROTECTION_OFFICER, "breach.affected.rows", lambda caller: (
        200, breach_service().affected_rows(req.route_params["id"], partner, caller.id)))


@bp.function_name("breach_assess")
@bp.route(route="breaches/{id}/assess", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def assess(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "breach.assess", lambda caller: (
        200, breach_service().assess(req.route_params["id"], json_body(req), caller.id)))


@bp.function_name("breach_ico_notified")
@bp.route(route="breaches/{id}/ico-notified", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def ico_notified(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "breach.ico_notified", lambda caller: (
        200, breach_service().ico_notified(req.route_params["id"], json_body(req), caller.id)))


@bp.function_name("breach_people_notified")
@bp.route(route="breaches/{id}/people-notified", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def people_notified(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "breach.people_notified", lambda caller: (
        200, breach_service().people_notified(req.route_params["id"], json_body(req), caller.id)))


@bp.function_name("breach_close")
@bp.route(route="breaches/{id}/close", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def close(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "breach.close", lambda caller: (
        200, breach_service().close(req.route_params["id"], json_body(req), caller.id)))
