"""The person index for the data protection officer: the review queue, decisions and splits (HTTP), and a timer
that keeps the index and its queue current. Thin adapters over shared/identity/service.py."""

import logging

import azure.functions as func

from functions.http import admin_call, json_body
from shared.platform.auth import DATA_PROTECTION_OFFICER, PLATFORM_ADMIN
from shared.platform.paging import PageRequest
from shared.runtime import identity_service, rights_service

bp = func.Blueprint()


@bp.function_name("identity_reviews")
@bp.route(route="identity/reviews", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def reviews(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "identity.review.list", lambda caller: (
        200, identity_service().reviews(req.params.get("status", "pending"),
                                        PageRequest.from_params("identity-reviews", req.params))))


@bp.function_name("identity_review_decide")
@bp.route(route="identity/reviews/{id}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def decide(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "identity.review.decide", lambda caller: (
        200, identity_service().decide(req.route_params["id"], json_body(req).get("decision"), caller.id)))


@bp.function_name("identity_split")
@bp.route(route="identity/split", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def split(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "identity.split", lambda caller: (
        200, identity_service().split(rights_service().person_keys(json_body(req).get("identifiers")), caller.id)))


@bp.function_name("identity_link")
@bp.route(route="identity/link", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def link(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "identity.link", lambda caller: (200, identity_service().link(caller.id)))


@bp.function_name("identity_timer")
@bp.timer_trigger(schedule="%FDP_IDENTITY_SCHEDULE%", arg_name="timer", use_monitor=True)
def scheduled(timer: func.TimerRequest) -> None:
    summary = identity_service().index.ensure_linked()
    logging.info("identity: %s", summary if summary is not None else "already current")
