"""HTTP admin functions for partners' drop zones and their uploads (role Platform.Admin). Thin adapters over
shared/ingest/dropzones.py."""

import azure.functions as func

from functions.http import admin_call, json_body
from shared.platform.auth import PLATFORM_ADMIN, Problem
from shared.platform.paging import PageRequest
from shared.runtime import drop_zones

bp = func.Blueprint()


@bp.function_name("partner_onboard")
@bp.route(route="partners/{partner}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
def onboard(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "partner.onboard",
                      lambda caller: (200, drop_zones().onboard(req.route_params["partner"])))


@bp.function_name("partner_link_issue")
@bp.route(route="partners/{partner}/links", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def issue_link(req: func.HttpRequest) -> func.HttpResponse:
    def work(caller):
        body = json_body(req)
        days = body.get("expiry_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int | float)):
            raise Problem(400, "Bad Request", "expiry_days must be a number of days.", field="expiry_days",
                          rule="link.expiry")
        link = drop_zones().issue_link(req.route_params["partner"], days=days, ip=body.get("ip"))
        api_base = req.url.split("/partners/", 1)[0]  # https://<app>/api
        return 201, {"url": link.url, "upload_page": link.page(api_base), "expires": link.expires.isoformat(),
                     "note": "Shown once: the platform keeps no copy. Send it to the partner securely."}
    return admin_call(req, PLATFORM_ADMIN, "partner.link.issue", work)


@bp.function_name("partner_links_revoke")
@bp.route(route="partners/{partner}/links", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def revoke_links(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "partner.links.revoke", lambda caller: (
        200, {"revoked": True, "link_generation": drop_zones().revoke(req.route_params["partner"])}))


@bp.function_name("partner_uploads")
@bp.route(route="partners/{partner}/uploads", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def uploads(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "partner.uploads", lambda caller: (200, drop_zones().uploads(
        req.route_params["partner"], PageRequest.from_params("partner-uploads", req.params))))


@bp.function_name("partner_list")
@bp.route(route="partners", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def partners(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "partner.list", lambda caller: (
        200, drop_zones().partners(PageRequest.from_params("partners", req.params))))


@bp.function_name("partner_uploads_all")
@bp.route(route="uploads", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def all_uploads(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, PLATFORM_ADMIN, "uploads.list", lambda caller: (
        200, drop_zones().all_uploads(PageRequest.from_params("uploads", req.params))))
