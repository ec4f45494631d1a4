"""Shared shape of every HTTP function: authorise, run one call into shared/, answer JSON, audit the call."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func

from shared.platform.auth import Caller, Problem, identify, require
from shared.platform.settings import ConfigurationError
from shared.runtime import platform

NO_STORE = {"Cache-Control": "no-store"}
ADMIN_CALL_EVENT = "fdp.admin.call"
"""The stable name alert queries match: one log line per admin call, naming the action and status only."""
log = logging.getLogger("fdp.http")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json",
                             headers={**NO_STORE, **(headers or {})})


def problem_response(problem: Problem) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(problem.document()), status_code=problem.status,
                             mimetype="application/problem+json", headers=NO_STORE)


STATIC = Path(__file__).parent / "static"


def page_headers(connect_src: str = "'self'") -> dict[str, str]:
    """What every page the app serves is sent with: its own scripts and styles only, calls only to `connect_src`,
    never framed, never cached, no referrer."""
    return {
        "Content-Security-Policy": f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src "
                                   f"{connect_src}; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def static_file(name: str, mimetype: str, headers: dict[str, str]) -> func.HttpResponse:
    """One of the files in functions/static/, as a page or an asset."""
    return func.HttpResponse((STATIC / name).read_text(), mimetype=mimetype, headers=headers)


def json_body(req: func.HttpRequest) -> dict[str, Any]:
    if not req.get_body():
        return {}
    try:
        body = req.get_json()
    except ValueError:
        raise Problem(400, "Bad Request", "The request body is not JSON.", rule="body.json") from None
    if not isinstance(body, dict):
        raise Problem(400, "Bad Request", "The request body must be a JSON object.", rule="body.object")
    return body


def admin_call(req: func.HttpRequest, role: str | tuple[str, ...], action: str,
               work: Callable[[Caller], tuple[int, Any]]) -> func.HttpResponse:
    """Authorise the caller for `role` (or any of several), do the work, and append the call (who, what, outcome)
    to the audit log. `work` answers (status, a JSON-able body), or (status, an HttpResponse) for anything other
    than JSON. Each call is also logged as `fdp.admin.call` with its action and status only: the alert rules
    (infra/bicep/modules/alerts.bicep) count these for bursts of access and repeated 401/403."""
    caller_id, status = "unauthenticated", 500
    try:
        caller = identify(req.headers, os.environ)
        caller_id = caller.id if caller else caller_id
        status, body = work(require(caller, role))
        return body if isinstance(body, func.HttpResponse) else json_response(body, status)
    except Problem as problem:
        status = problem.status
        return problem_response(problem)
    except ConfigurationError:
        logging.exception("%s: the app is misconfigured", action)
        return problem_response(Problem(500, "Internal Server Error", "The platform is misconfigured."))
    finally:
        log.info("%s action=%s status=%d", ADMIN_CALL_EVENT, action, status)
        platform().audit.append(f"admin.{action}", {"caller": caller_id, "status": status,
                                                     "route": dict(req.route_params)}, actor=caller_id)
