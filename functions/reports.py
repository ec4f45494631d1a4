"""Anonymised reports (role Analyst), research extracts (role DataProtection.Officer), and the timer that
refreshes standing reports (schedule from the FDP_REPORTS_SCHEDULE app setting, UTC). Thin adapters over
shared/reports.py and shared/extracts.py."""

import logging

import azure.functions as func

from functions.http import NO_STORE, admin_call, json_body
from shared.platform.auth import ANALYST, DATA_PROTECTION_OFFICER, RESEARCH_RECIPIENT, Problem
from shared.platform.paging import PageRequest
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


@bp.function_name("report_list")
@bp.route(route="reports", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def published(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, ANALYST, "report.list", lambda caller: (
        200, report_service().published(PageRequest.from_params("reports", req.params))))


@bp.function_name("extract_list")
@bp.route(route="extracts", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def produced(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "extract.list", lambda caller: (
        200, extract_service().produced(PageRequest.from_params("extracts", req.params))))


@bp.function_name("extract_create")
@bp.route(route="extracts/{name}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def extract(req: func.HttpRequest) -> func.HttpResponse:
    """Record the recipient's agreement (body: recipient_principal, agreed_at) and build the extract."""
    return admin_call(req, DATA_PROTECTION_OFFICER, "extract.create", lambda caller: (
        201, extract_service().build(req.route_params["name"], caller.id, json_body(req))))


@bp.function_name("extract_record")
@bp.route(route="extracts/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def extract_record(req: func.HttpRequest) -> func.HttpResponse:
    """An extract's agreement, manifest and (once destroyed) destruction certificate."""
    return admin_call(req, DATA_PROTECTION_OFFICER, "extract.read", lambda caller: (
        200, extract_service().record(req.route_params["id"])))


@bp.function_name("extract_download")
@bp.route(route="extracts/{id}/download", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def extract_download(req: func.HttpRequest) -> func.HttpResponse:
    """The CSV, for the recipient principal its agreement names; every download is audited with their id."""
    def work(caller):
        extract_id = req.route_params["id"]
        content = extract_service().download(extract_id, caller)
        return 200, func.HttpResponse(content, status_code=200, mimetype="text/csv", headers={
            **NO_STORE, "Content-Disposition": f'attachment; filename="{extract_id}.csv"'})
    return admin_call(req, RESEARCH_RECIPIENT, "extract.download", work)


@bp.function_name("reports_timer")
@bp.timer_trigger(schedule="%FDP_REPORTS_SCHEDULE%", arg_name="timer", use_monitor=True)
def refresh(timer: func.TimerRequest) -> None:
    for metadata in report_service().refresh_all():
        logging.info("report %s: %s", metadata["report"], metadata["status"])
