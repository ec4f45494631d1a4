"""HTTP functions for people's rights requests (role DataProtection.Officer), and the queue-triggered worker
that does the long part. Thin adapters over shared/rights.py."""

import json

import azure.functions as func

from functions.http import admin_call, json_body, json_response
from shared.platform.auth import DATA_PROTECTION_OFFICER
from shared.platform.paging import PageRequest
from shared.platform.storage import RIGHTS_QUEUE
from shared.rights.requests import IN_PROGRESS
from shared.runtime import rights_service

bp = func.Blueprint()


def _location(request_id: str) -> dict[str, str]:
    return {"Location": f"/api/requests/{request_id}"}


@bp.function_name("rights_request_create")
@bp.route(route="requests", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create(req: func.HttpRequest) -> func.HttpResponse:
    response = admin_call(req, DATA_PROTECTION_OFFICER, "rights.request.create", lambda caller: (
        201, rights_service().show(rights_service().submit(json_body(req), caller.id))))
    if response.status_code == 201:
        response.headers.update(_location(json.loads(response.get_body())["id"]))
    return response


@bp.function_name("rights_request_get")
@bp.route(route="requests/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get(req: func.HttpRequest) -> func.HttpResponse:
    response = admin_call(req, DATA_PROTECTION_OFFICER, "rights.request.read",
                          lambda caller: (200, rights_service().view(req.route_params["id"])))
    body = json.loads(response.get_body()) if response.status_code == 200 else {}
    if body.get("status") == IN_PROGRESS:  # long work: poll again
        return json_response(body, 202, {**_location(body["id"]), "Retry-After": "5"})
    return response


@bp.function_name("rights_request_list")
@bp.route(route="requests", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_open(req: func.HttpRequest) -> func.HttpResponse:
    def work(caller):
        page = PageRequest.from_params("requests", req.params)
        return 200, rights_service().listed(req.params.get("status", "open"), page)
    return admin_call(req, DATA_PROTECTION_OFFICER, "rights.request.list", work)


@bp.function_name("rights_request_extend")
@bp.route(route="requests/{id}/extend", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def extend(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, DATA_PROTECTION_OFFICER, "rights.request.extend", lambda caller: (
        200, rights_service().show(rights_service().extend(req.route_params["id"], json_body(req).get("reason"),
                                                           caller.id))))


@bp.function_name("rights_request_decide")
@bp.route(route="requests/{id}/decide", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def decide(req: func.HttpRequest) -> func.HttpResponse:
    def work(caller):
        body = json_body(req)
        decided = rights_service().decide(req.route_params["id"], body.get("outcome"), body.get("reasons"), caller.id)
        return 200, rights_service().show(decided)
    return admin_call(req, DATA_PROTECTION_OFFICER, "rights.request.decide", work)


@bp.function_name("rights_worker")
@bp.queue_trigger(arg_name="msg", queue_name=RIGHTS_QUEUE, connection="AzureWebJobsStorage")
def worker(msg: func.QueueMessage) -> None:
    rights_service().work(json.loads(msg.get_body())["request_id"])
