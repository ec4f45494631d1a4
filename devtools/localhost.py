"""A small local stand-in for the Functions host's HTTP front door, for machines without Core Tools.

It serves the app's HTTP functions under /api/ exactly as indexed from `function_app.app` (routes, methods),
turning each request into a real `func.HttpRequest` and writing back the `func.HttpResponse`. Function keys are
not checked (Core Tools does not check them locally either); roles are, through the same code as in Azure. With
`--watch`, it also plays Event Grid (every new blob in a drop zone is delivered to the ingest function) and the
queue trigger (queued rights work is carried out), so a rights request completes without another command.
Against Azurite it also lets the upload page's origin upload from the browser (the CORS rule that the Bicep
templates give the ingest account in Azure).

With `--sign-in-as ID:ROLE,ROLE` it also plays App Service authentication for a browser: every request that
carries no `x-ms-client-principal` gets that caller's, as a signed-in session would, so the operator console
works in a local browser. It sets `FDP_LOCAL_AUTH=trust-principal-header` for the app (refused in Azure), and
listens on 127.0.0.1 only: whoever can reach the port is that caller.

    python -m devtools.localhost --port 7071 --watch
    python -m devtools.localhost --watch --sign-in-as operator:Platform.Admin,DataProtection.Officer,Analyst
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devtools.eventgrid import indexed_functions
from shared.platform.auth import LOCAL_MODE, Problem, encode_principal
from shared.platform.settings import Settings
from shared.platform.storage import Storage

LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class HttpRoute:
    name: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    auth_level: str
    handler: Any


def http_routes() -> list[HttpRoute]:
    routes = []
    for name, function in indexed_functions().items():
        trigger = next((b for b in json.loads(function.get_function_json())["bindings"]
                        if b["type"] == "httpTrigger"), None)
        if trigger is None:
            continue
        template = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"(?P<\1>[^/]+)", trigger["route"])
        routes.append(HttpRoute(name, frozenset(m.upper() for m in trigger["methods"]),
                                re.compile(f"^/api/{template}$"), trigger["authLevel"], function.get_user_function()))
    # Literal segments win over parameters, as in the host: upload/check before upload/assets/{name}.
    return sorted(routes, key=lambda route: route.pattern.pattern.count("(?P<"))


def dispatch(routes: list[HttpRoute], method: str, url: str, headers: dict[str, str],
             body: bytes = b"") -> func.HttpResponse:
    parts = urlsplit(url)
    for route in routes:
        match = route.pattern.match(parts.path)
        if match and method.upper() in route.methods:
            request = func.HttpRequest(method=method.upper(), url=url, headers=headers,
                                       params=dict(parse_qsl(parts.query)), route_params=match.groupdict(),
                                       body=body)
            return route.handler(request)
    return func.HttpResponse(json.dumps(Problem(404, "Not Found", "No function answers this route.").document()),
                             status_code=404, mimetype="application/problem+json")


def signed_in(caller: str) -> dict[str, str]:
    """`ID:ROLE,ROLE` as the header App Service authentication sets for a signed-in session."""
    caller_id, _, roles = caller.partition(":")
    if not caller_id or not roles:
        raise ValueError("--sign-in-as takes ID:ROLE[,ROLE...], e.g. operator:Platform.Admin")
    return {"x-ms-client-principal": encode_principal(caller_id, roles.split(","))}


def serve(port: int, host: str = "127.0.0.1", principal: dict[str, str] | None = None) -> ThreadingHTTPServer:
    """Serve the app's HTTP functions in a background thread; call .shutdown() to stop. With `principal` (see
    `signed_in`), requests without a principal header get it, as App Service authentication would set it."""
    routes = http_routes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # no request lines: URLs are not for logs here either
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = f"http://{host}:{port}{self.path}"
            headers = dict(self.headers.items())
            if principal and not any(key.lower() == "x-ms-client-principal" for key in headers):
                headers.update(principal)
            response = dispatch(routes, self.command, url, headers, body)
            payload = response.get_body() or b""
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            if response.mimetype and "content-type" not in {k.lower() for k, _ in response.headers.items()}:
                self.send_header("Content-Type", f"{response.mimetype}; charset={response.charset or 'utf-8'}")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def allow_the_page_on_azurite(storage: Storage, port: int) -> list[str]:
    """Let the upload page served on `port` upload to Azurite's drop zones, whichever local name the browser uses
    (in Azure, the Bicep templates set this CORS rule). Only a local ingest account is touched; returns the
    origins newly allowed."""
    if urlsplit(storage.ingest_blobs.url).hostname not in LOCAL_HOSTS:
        return []
    return [origin for origin in (f"http://{host}:{port}" for host in LOCAL_HOSTS)
            if storage.allow_upload_origin(origin)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--watch", action="store_true", help="deliver new drop-zone blobs to the ingest function")
    parser.add_argument("--cors-only", action="store_true",
                        help="only let the upload page on --port upload to Azurite (CORS), then exit: for `func start`")
    parser.add_argument("--sign-in-as", metavar="ID:ROLE,ROLE", help="play App Service authentication for a browser")
    args = parser.parse_args()
    storage = Storage.from_settings(Settings.from_env())
    for origin in allow_the_page_on_azurite(storage, args.port):
        print(f"Azurite's ingest account now accepts browser uploads from {origin} (CORS), for the upload page")
    if args.cors_only:
        return
    principal = None
    if args.sign_in_as:
        principal = signed_in(args.sign_in_as)
        os.environ["FDP_LOCAL_AUTH"] = LOCAL_MODE
    server = serve(args.port, principal=principal)
    print(f"serving the app's HTTP functions on http://127.0.0.1:{args.port}/api/ (Ctrl-C to stop)", flush=True)
    try:
        if args.watch:
            from devtools.eventgrid import watch
            from devtools.queues import work

            stop = threading.Event()
            threading.Thread(target=work, args=(storage, stop), daemon=True).start()  # rights work, as queued
            watch(storage, stop)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
