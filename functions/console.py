"""The operator console: one static page (and its script and style) over the JSON API.

The page holds no data and no secret, so it is served without a function key: everything it shows comes from
the admin functions it calls, each with the operator's sign-in (App Service authentication; locally the local
host plays it), the function key the operator enters, and the role the function needs. What the operator may do
is decided there, not here.
"""

import azure.functions as func

from functions.http import page_headers, problem_response, static_file
from shared.platform.auth import Problem

bp = func.Blueprint()
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}


@bp.function_name("console_page")
@bp.route(route="console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def page(req: func.HttpRequest) -> func.HttpResponse:
    return static_file("console.html", "text/html", page_headers())


@bp.function_name("console_asset")
@bp.route(route="console/assets/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def asset(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    if name not in ASSETS:
        return problem_response(Problem(404, "Not Found", "The console has no asset of that name."))
    return static_file(name, ASSETS[name], page_headers())
