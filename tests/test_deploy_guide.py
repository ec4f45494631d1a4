"""docs/deploy.md, "Sign in and make a first call", checked against the app itself: its role table names, for
every admin function, exactly the role that function demands, and the problem documents it quotes for 401 and 403
are the ones the app answers with. Functions are called as the host would, with App Service authentication on,
against Azurite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devtools.eventgrid import indexed_functions
from shared.platform.auth import ROLES
from tests.helpers import http_api, principal

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"
ROW = re.compile(r"^\| (?P<roles>`[\w.]+`(?: or `[\w.]+`)*) \| (?P<functions>.+) \|$", re.M)
CALL = re.compile(r"`(?P<method>GET|POST|PUT|DELETE) (?P<route>[^`]+)`")


def _section(heading: str) -> str:
    return GUIDE.read_text().split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]


def documented_roles() -> dict[tuple[str, str], tuple[str, ...]]:
    """(method, route) -> the role, or the roles any one of which will do, the guide's table puts it under."""
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    for row in ROW.finditer(_section("Assign the roles")):
        roles = tuple(re.findall(r"`([\w.]+)`", row["roles"]))
        for call in CALL.finditer(row["functions"]):
            assert (call["method"], call["route"]) not in table, f"{call[0]} is listed twice"
            table[call["method"], call["route"]] = roles
    return table


def admin_functions() -> set[tuple[str, str]]:
    """Every HTTP function that needs a function key: the admin functions, as (method, route)."""
    found = set()
    for function in indexed_functions().values():
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding["type"] == "httpTrigger" and binding["authLevel"] == "FUNCTION":
                found |= {(method.upper(), binding["route"]) for method in binding["methods"]}
    return found


@pytest.fixture
def api(app_env, monkeypatch):
    app_env("leap")
    return http_api(monkeypatch)


def test_the_role_table_lists_every_admin_function_once():
    table = documented_roles()
    assert {role for roles in table.values() for role in roles} == set(ROLES)
    assert set(table) == admin_functions()


def test_every_admin_function_demands_the_role_the_guide_gives_it(api):
    no_role = principal("no-role-object-id")
    for (method, route), roles in documented_roles().items():
        status, problem, _ = api(method, re.sub(r"\{\w+\}", "x", route), no_role)
        assert status == 403, (method, route, problem)
        assert problem["detail"] == f"This operation needs the {' or '.join(roles)} role.", (method, route)


def test_the_problem_documents_the_guide_quotes_are_the_apps(api):
    meanings = _section("What 401 and 403 mean")
    status, problem, response = api("GET", "requests")
    assert status == 401 and response.mimetype == "application/problem+json"
    assert f'`"{problem["detail"]}"`' in meanings
    status, problem, _ = api("GET", "requests", principal("analyst-object-id", "Analyst"))
    assert status == 403 and f'`"{problem["detail"]}"`' in meanings
