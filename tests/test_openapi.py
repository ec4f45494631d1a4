"""docs/openapi.yaml describes the HTTP functions: every route the function app registers and no other, as a valid
OpenAPI 3.1 document; and the app answers requests generated from it (schemathesis, against the local host over
Azurite) with documented status codes, content types and bodies, never a server error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from devtools import localhost
from devtools.azurite import free_port
from devtools.eventgrid import indexed_functions
from tests.helpers import principal

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
EVERY_ROLE = principal("api-fuzzer", "Platform.Admin", "DataProtection.Officer", "Analyst", "Research.Recipient")
NOT_CHECKED = [
    positive_data_acceptance,  # a schema-valid NHS number need not pass its check digit: 400 is right
    ignored_auth,  # the local host does not check function keys (neither does Core Tools); roles it does check
    negative_data_rejection,  # the generated "missing principal" case is overridden by EVERY_ROLE's header
]


def registered() -> dict[tuple[str, str], str]:
    """(METHOD, /route) -> function name, for every HTTP function of `function_app.app.get_functions()` (indexed
    once, as the host does: indexing the same app twice is refused)."""
    routes = {}
    for function in indexed_functions().values():
        trigger = function.get_trigger()
        if trigger.type == "httpTrigger":
            for method in trigger.methods:
                routes[(str(method.value).upper(), f"/{trigger.route}")] = function.get_function_name()
    return routes


def documented(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(method.upper(), path): operation["operationId"] for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS}


def test_the_document_names_every_route_and_no_other():
    document = yaml.safe_load(DOC.read_text())
    validate(document)
    routes, described = registered(), documented(document)
    assert sorted(set(routes) - set(described)) == [], "routes the document is missing"
    assert sorted(set(described) - set(routes)) == [], "documented routes the app does not have"
    assert described == routes, "each operationId is its function's name"


def test_a_missing_route_is_noticed():
    document = yaml.safe_load(DOC.read_text())
    del document["paths"]["/upload/check"]
    assert documented(document) != registered()


def test_generated_requests_get_documented_answers(app_env, storage):
    """Requests generated from the document, valid and not, with a caller holding every role: no server errors,
    and each answer's status, content type, headers and body are the documented ones (problem documents for the
    refusals). A handful of examples per operation, the same ones each run."""
    app_env("leap")
    port = free_port()
    server = localhost.serve(port)
    base_url = f"http://127.0.0.1:{port}/api"
    try:
        for result in schemathesis.openapi.from_path(DOC).get_all_operations():
            operation = result.ok()
            exercise(operation, GenerationMode.POSITIVE, base_url, examples=3)
            exercise(operation, GenerationMode.NEGATIVE, base_url, examples=2)
    finally:
        server.shutdown()


def exercise(operation: Any, mode: GenerationMode, base_url: str, examples: int) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def answers(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=EVERY_ROLE, excluded_checks=NOT_CHECKED)

    try:
        answers()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # an operation with no input to get wrong (the upload page itself) has no negative case


@pytest.fixture(autouse=True)
def _auth_on(monkeypatch):
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
