"""Retention: the scheduled purge (timer, UTC, schedule from the FDP_RETENTION_SCHEDULE app setting), its preview
and manual run, and legal holds (HTTP, role Platform.Admin). Thin adapters over shared/retention/ and the person
index (a hold on a person holds whoever the index resolves the identifiers given to)."""

import logging
from datetime import UTC, date, datetime

import azure.functions as func

from functions.http import admin_call, json_body
from shared.platform.auth import PLATFORM_ADMIN, Problem
from shared.platform.paging import PageRequest
from shared.platform.storage import HOLDS
from shared.retention.holds import HoldRegister
from shared.runtime import platform, retention_service, rights_service

bp = func.Blueprint()


def _date(body: dict, *, not_after_today: bool) -> date:
    today = datetime.now(UTC).date()
    try:
        on = date.fromisoformat(body["date"]) if body.get("date") else today
    except (TypeError, ValueError):
        raise Problem(400, "Bad Request", "date must be YYYY-MM-DD", field="date", rule="date.format") from None
    if not_after_today and on > today:
        raise Problem(400, "Bad Request", "a run cannot be dated in the future", field="date", rule="date.future")
    return on


@bp.function_name("retention_timer")
@bp.timer_trigger(schedule="%FDP_RETENTION_SCHEDULE%", arg_name="timer", use_monitor=True)
def scheduled(timer: func.TimerRequest) -> None:
    record = retention_service().run(datetime.now(UTC).date())
    logging.info("retention run %s: %s", record["run"], record["summary"])


@bp.function_name("retention_preview")
@bp.route(route="retention/preview", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def preview(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "retention.preview", lambda caller: (
        200, retention_service().preview(_date(json_body(req), not_after_today=False))))


@bp.function_name("retention_run")
@bp.route(route="retention/run", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def run(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "retention.run", lambda caller: (
        200, retention_service().run(_date(json_body(req), not_after_today=True))))


@bp.function_name("retention_hold_set")
@bp.route(route="retention/holds", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def set_hold(req: func.HttpRequest) -> func.HttpResponse:
    def work(caller):
        body, current = json_body(req), platform()
        holds = HoldRegister(current.storage.table(HOLDS))
        if body.get("dataset"):
            if not any(body["dataset"] in p.datasets for p in current.policy.partners.values()):
                raise Problem(400, "Bad Request", "name a dataset of the policy", field="dataset", rule="hold.dataset")
            return 201, holds.set(reason=body.get("reason"), by=caller.id, dataset=body["dataset"])
        people = rights_service().hold_keys(body.get("identifiers"))
        return 201, holds.set(reason=body.get("reason"), by=caller.id, pseudonyms=people)
    return admin_call(req, PLATFORM_ADMIN, "retention.hold.set", work)


@bp.function_name("retention_hold_lift")
@bp.route(route="retention/holds/{id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def lift_hold(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "retention.hold.lift", lambda caller: (200, HoldRegister(
        platform().storage.table(HOLDS)).lift(req.route_params["id"], reason=json_body(req).get("reason"),
                                              by=caller.id)))


@bp.function_name("retention_holds")
@bp.route(route="retention/holds", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_holds(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "retention.hold.list", lambda caller: (
        200, HoldRegister(platform().storage.table(HOLDS)).listing(PageRequest.from_params("holds", req.params))))
