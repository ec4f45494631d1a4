"""A local stand-in for Azure Key Vault's secrets and keys APIs, over HTTPS on localhost. Not Key Vault.

A fake is unavoidable here: Key Vault has no emulator. This one speaks just enough of the real protocol for the
real azure-keyvault-secrets SecretClient and azure-keyvault-keys KeyClient and CryptographyClient to run
unmodified against it: the 401 bearer challenge, GET /secrets/{name}/{version}, GET /keys/{name}/{version}, and
POST /keys/{name}/{version}/sign and /verify. So the platform's Key Vault code paths are exercised through the
real clients. Like Key Vault, it never sends a key's private part: a GET returns the public JWK only, and signing
happens here, on the "vault" side. Each key is EC P-256 with key_ops sign and verify, not exportable, the way
infra/bicep/modules/keyvault.bicep creates the audit checkpoint key.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from azure.core.credentials import AccessToken
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

TOKEN = "stub-token"  # a fake bearer token for a fake vault
ATTRIBUTES = {"enabled": True, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable"}


class StaticCredential:
    """A TokenCredential that always returns the stub's token (a fake: there is no Entra ID here)."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(TOKEN, 4_102_444_800)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class StubKey:
    version: str
    private: ec.EllipticCurvePrivateKey
    key_ops: tuple[str, ...] = ("sign", "verify")
    enabled: bool = True

    def public_jwk(self, kid: str) -> dict:
        numbers = self.private.public_key().public_numbers()
        return {"kid": kid, "kty": "EC-HSM", "crv": "P-256", "key_ops": list(self.key_ops),
                "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big"))}


@dataclass
class KeyVaultStub:
    secrets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """name -> [(version, value)], newest last."""
    keys: dict[str, list[StubKey]] = field(default_factory=dict)
    """name -> [key versions], newest last."""
    reads: list[str] = field(default_factory=list)
    """Every secret read, as name/version."""
    signs: list[str] = field(default_factory=list)
    """Every signature made, as name/version."""
    url: str = ""
    ca_file: str = ""

    def set_secret(self, name: str, version: str, value: str) -> None:
        self.secrets.setdefault(name, []).append((version, value))

    def create_key(self, name: str, version: str, key_ops: tuple[str, ...] = ("sign", "verify")) -> str:
        """A new EC P-256 key version (as creating or rotating the key in Key Vault would); returns its key id."""
        self.keys.setdefault(name, []).append(StubKey(version, ec.generate_private_key(ec.SECP256R1()), key_ops))
        return self.key_id(name, version)

    def key_id(self, name: str, version: str) -> str:
        return f"{self.url}/keys/{name}/{version}"

    def find_key(self, name: str, version: str | None) -> StubKey | None:
        versions = self.keys.get(name) or []
        if not version:
            return versions[-1] if versions else None
        return next((key for key in versions if key.version == version), None)


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
            if not self._authorised():
                return
            parts = self._parts()
            if len(parts) >= 2 and parts[0] == "secrets" and parts[1] in stub.secrets:
                self._secret(parts)
            elif len(parts) in (2, 3) and parts[0] == "keys":
                self._key(parts)
            else:
                self._reply(404, {"error": {"code": "NotFound", "message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not self._authorised():
                return
            parts = self._parts()
            if len(parts) != 4 or parts[0] != "keys" or parts[3] not in ("sign", "verify"):
                self._reply(404, {"error": {"code": "NotFound", "message": "not found"}})
                return
            key = stub.find_key(parts[1], parts[2])
            if key is None:
                self._reply(404, {"error": {"code": "KeyNotFound", "message": "key not found"}})
                return
            operation, request = parts[3], json.loads(body or b"{}")
            if operation not in key.key_ops or not key.enabled:
                self._reply(403, {"error": {"code": "Forbidden", "message": f"Operation {operation} is not "
                                            "permitted on this key."}})
                return
            digest = _unb64url(request.get("value") or request.get("digest") or "")
            if request.get("alg") != "ES256" or len(digest) != 32:
                self._reply(400, {"error": {"code": "BadParameter", "message": "ES256 needs a SHA-256 digest"}})
                return
            algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
            kid = stub.key_id(parts[1], key.version)
            if operation == "sign":
                r, s = utils.decode_dss_signature(key.private.sign(digest, algorithm))
                stub.signs.append(f"{parts[1]}/{key.version}")
                self._reply(200, {"kid": kid, "value": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))})
                return
            raw = _unb64url(request.get("value") or "")
            signature = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            try:
                key.private.public_key().verify(signature, digest, algorithm)
                valid = True
            except InvalidSignature:
                valid = False
            self._reply(200, {"value": valid})

        def _secret(self, parts: list[str]) -> None:
            versions = stub.secrets[parts[1]]
            wanted = parts[2] if len(parts) > 2 else None
            version, value = next((v for v in versions if v[0] == wanted), versions[-1]) if wanted else versions[-1]
            stub.reads.append(f"{parts[1]}/{version}")
            self._reply(200, {"value": value, "id": f"{stub.url}/secrets/{parts[1]}/{version}",
                              "attributes": ATTRIBUTES})

        def _key(self, parts: list[str]) -> None:
            key = stub.find_key(parts[1], parts[2] if len(parts) > 2 else None)
            if key is None:
                self._reply(404, {"error": {"code": "KeyNotFound", "message": "key not found"}})
                return
            kid = stub.key_id(parts[1], key.version)
            self._reply(200, {"key": key.public_jwk(kid),
                              "attributes": {**ATTRIBUTES, "enabled": key.enabled, "exportable": False}})

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            self._reply(401, {"error": {"code": "Unauthorized"}}, challenge=True)
            return False

        def _parts(self) -> list[str]:
            return [part for part in self.path.split("?")[0].split("/") if part]

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
