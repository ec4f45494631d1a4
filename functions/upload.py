"""The partner upload page. Anonymous: a partner proves who they are with their upload link alone.

The link travels in the page's URL fragment (never sent to the server) or is pasted in; the browser uploads
straight to Blob storage in blocks; the page then polls for the receipt through a read path that checks the
link's signature and reveals only the receipt of the upload that link made. A partner who uploaded with AzCopy
or Storage Explorer posts the same link to `upload/receipts` and gets its uploads newest first, each with its
receipt, or one upload by its ingest id. The link goes to the server only in POST bodies, never in a URL, so it
cannot end up in access logs.
"""

from urllib.parse import urlsplit

import azure.functions as func

from functions.http import json_body, json_response, page_headers, problem_response, static_file
from shared.platform.auth import Problem
from shared.runtime import drop_zones, platform

bp = func.Blueprint()


def _security_headers() -> dict[str, str]:
    """The page uploads straight to the ingest account, so it may call that as well as the app."""
    blob = urlsplit(platform().storage.ingest_blobs.url)
    return page_headers(f"'self' {blob.scheme}://{blob.netloc}")


@bp.function_name("upload_page")
@bp.route(route="upload", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def page(req: func.HttpRequest) -> func.HttpResponse:
    return static_file("upload.html", "text/html", _security_headers())


@bp.function_name("upload_page_asset")
@bp.route(route="upload/assets/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def asset(req: func.HttpRequest) -> func.HttpResponse:
    types = {"upload.js": "text/javascript", "upload.css": "text/css"}
    name = req.route_params.get("name", "")
    if name not in types:
        return func.HttpResponse(status_code=404)
    return static_file(name, types[name], _security_headers())


@bp.function_name("upload_link_check")
@bp.route(route="upload/check", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def check(req: func.HttpRequest) -> func.HttpResponse:
    try:
        partner = drop_zones().check_link(str(json_body(req).get("link", "")))
    except Problem as problem:
        return problem_response(problem)
    datasets = [{"name": name, "label": dataset.title} for name, dataset in sorted(partner.datasets.items())]
    return json_response({"partner": partner.id, "name": partner.name, "datasets": datasets})


@bp.function_name("upload_receipt")
@bp.route(route="upload/receipt", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def receipt(req: func.HttpRequest) -> func.HttpResponse:
    try:
        body = json_body(req)
        found = drop_zones().receipt_for_upload(str(body.get("link", "")), str(body.get("blob", "")),
                                                str(body.get("etag", "")))
    except Problem as problem:
        return problem_response(problem)
    if found is None:
        return json_response({"status": "processing"}, 202)
    return json_response(found)


@bp.function_name("upload_receipts")
@bp.route(route="upload/receipts", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def receipts(req: func.HttpRequest) -> func.HttpResponse:
    """{"link": ..., "ingest_id": optional, "before": optional received_at, "limit": optional, 1 to 100}"""
    try:
        body = json_body(req)
        limit = body.get("limit", 20)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise Problem(400, "Bad Request", "limit must be a whole number.", field="limit", rule="receipts.limit")
        found = drop_zones().receipts_for_link(
            str(body.get("link", "")), ingest_id=_text(body.get("ingest_id")), before=_text(body.get("before")),
            limit=limit)
    except Problem as problem:
        return problem_response(problem)
    return json_response(found)


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None
