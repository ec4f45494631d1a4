"""Anonymised reports (role Analyst), research extracts (role DataProtection.Officer), and the timer that
refreshes standing reports (schedule from the FDP_REPORTS_SCHEDULE app setting, UTC). Thin adapters over
shared/reports.py and shared/extracts.py."""

import logging

import azure.functions as func

from functions.http import admin_call
from shared.platform.auth import ANALYST, DATA_PROTECTION_OFFICER, Problem
from shared.runtime import extract_service, report_service

bp = func.Blueprint()


@bp.function_name("report_run")
@bp.route(route="reports/{name}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def run(req: func.HttpRequest) -> func.HttpResponse:
    def work(caller):
        metadata = report_service().run(req.route_params["name"])
        if metadata["status"] == "blocked":
            raise Problem(422, "Unprocessable Content", f"The report was blocked: {metadata['blocked_reason']}.",
                          rule="disclosure.blocked")
        return 201, metadata
    return admin_call(req, ANALYST, "report.run", work)


@bp.function_name("report_latest")
@bp.route(route="reports/{name}/latest", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def latest(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, ANALYST, "report.read", lambda caller: (200, report_service().latest(
        req.route_params["name"])))


@bp.function_name("extract_create")
@bp.route(route="extracts/{name}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def extract(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "extract.create", lambda caller: (
        201, extract_service().build(req.route_params["name"], caller.id)))


@bp.function_name("reports_timer")
@bp.timer_trigger(schedule="%FDP_REPORTS_SCHEDULE%", arg_name="timer", use_monitor=True)
def refresh(timer: func.TimerRequest) -> None:
    for metadata in report_service().refresh_all():
        logging.info("report %s: %s", metadata["report"], metadata["status"])
