"""Who is calling an HTTP function, and may they?

Every admin function needs a function key (enforced by the Functions host) and a role taken from the App Service
authentication principal (`x-ms-client-principal`). App Service authentication strips that header from incoming
requests and sets its own, so it is trusted only when authentication is on (`WEBSITE_AUTH_ENABLED=True`).
Otherwise anyone could send it: it is ignored, and the caller gets 401. For local development there is an
explicit mode, `FDP_LOCAL_AUTH=trust-principal-header`, off by default and refused in Azure.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from shared.platform.settings import ConfigurationError, running_in_azure

PLATFORM_ADMIN = "Platform.Admin"
DATA_PROTECTION_OFFICER = "DataProtection.Officer"
ANALYST = "Analyst"
RESEARCH_RECIPIENT = "Research.Recipient"
"""A research recipient's staff member: downloads the extracts whose agreement names them, nothing else."""
ROLES = (PLATFORM_ADMIN, DATA_PROTECTION_OFFICER, ANALYST, RESEARCH_RECIPIENT)
LOCAL_MODE = "trust-principal-header"
_ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")


@dataclass(frozen=True)
class Caller:
    id: str
    """The principal's object id: recorded in the audit log (never a name or an email address)."""
    roles: frozenset[str]


class Problem(Exception):
    """An HTTP error answered as an RFC 9457 problem document. Its detail never carries a submitted value."""

    def __init__(self, status: int, title: str, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra

    def document(self) -> dict[str, object]:
        return {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail,
                **self.extra}


def principal_trusted(env: Mapping[str, str]) -> bool:
    local = env.get("FDP_LOCAL_AUTH", "")
    if local and running_in_azure(env):
        raise ConfigurationError("FDP_LOCAL_AUTH is set in Azure: remove it and use App Service authentication")
    if env.get("WEBSITE_AUTH_ENABLED", "").lower() == "true":
        return True
    return local == LOCAL_MODE


def identify(headers: Mapping[str, str], env: Mapping[str, str]) -> Caller | None:
    """The caller App Service authentication vouches for, or None."""
    return _principal(headers) if principal_trusted(env) else None


def require(caller: Caller | None, role: str | tuple[str, ...]) -> Caller:
    """The caller, if they carry `role` (or one of several); otherwise Problem 401 (no trusted principal) or 403
    (wrong role)."""
    if caller is None:
        raise Problem(401, "Unauthorized", "Sign in through the platform's App Service authentication.")
    allowed = (role,) if isinstance(role, str) else role
    if not caller.roles & set(allowed):
        raise Problem(403, "Forbidden", f"This operation needs the {' or '.join(allowed)} role.")
    return caller


def _principal(headers: Mapping[str, str]) -> Caller | None:
    encoded = _header(headers, "x-ms-client-principal")
    if not encoded:
        return None
    try:
        principal = json.loads(base64.b64decode(encoded, validate=True))
        claims = principal.get("claims") or []
        role_type = principal.get("role_typ") or "roles"
        roles = frozenset(c["val"] for c in claims if c.get("typ") in (role_type, *_ROLE_CLAIMS))
        caller_id = _header(headers, "x-ms-client-principal-id") or next(
            (c["val"] for c in claims if c.get("typ") in _ID_CLAIMS), "unknown")
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        return None
    return Caller(str(caller_id), roles)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def encode_principal(caller_id: str, roles: list[str]) -> str:
    """The header App Service authentication would set: for local development and tests."""
    claims = [{"typ": "roles", "val": role} for role in roles]
    claims.append({"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": caller_id})
    document = {"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims}
    return base64.b64encode(json.dumps(document).encode()).decode()
