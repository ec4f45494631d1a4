"""A stand-in for Azure Key Vault's secrets API, over HTTPS on localhost.

A fake is unavoidable here: Key Vault has no emulator. This one speaks just enough of the real protocol (the
401 bearer challenge, then GET /secrets/{name}/{version}) for the real azure-keyvault-secrets SecretClient to
run unmodified against it, so the platform's Key Vault code path is exercised through the real client.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from azure.core.credentials import AccessToken

TOKEN = "stub-token"  # a fake bearer token for a fake vault


class StaticCredential:
    """A TokenCredential that always returns the stub's token (a fake: there is no Entra ID here)."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(TOKEN, 4_102_444_800)


@dataclass
class KeyVaultStub:
    secrets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """name -> [(version, value)], newest last."""
    reads: list[str] = field(default_factory=list)
    url: str = ""
    ca_file: str = ""

    def set_secret(self, name: str, version: str, value: str) -> None:
        self.secrets.setdefault(name, []).append((version, value))


def start(workdir: Path) -> tuple[KeyVaultStub, ThreadingHTTPServer]:
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    ca_file = workdir / "stub-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    stub = KeyVaultStub(ca_file=str(ca_file))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"error": {"code": "Unauthorized"}}, challenge=True)
                return
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) < 2 or parts[0] != "secrets" or parts[1] not in stub.secrets:
                self._reply(404, {"error": {"code": "SecretNotFound", "message": "not found"}})
                return
            versions = stub.secrets[parts[1]]
            wanted = parts[2] if len(parts) > 2 else None
            version, value = next((v for v in versions if v[0] == wanted), versions[-1]) if wanted else versions[-1]
            stub.reads.append(f"{parts[1]}/{version}")
            self._reply(200, {"value": value, "id": f"{stub.url}/secrets/{parts[1]}/{version}",
                              "attributes": {"enabled": True, "created": 1_700_000_000,
                                             "updated": 1_700_000_000, "recoveryLevel": "Recoverable"}})

        def _reply(self, status: int, body: dict, challenge: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if challenge:
                self.send_header("WWW-Authenticate", 'Bearer authorization="https://login.microsoftonline.com/'
                                 '00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"')
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    stub.url = f"https://localhost:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stub, server
