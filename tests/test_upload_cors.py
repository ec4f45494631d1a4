"""The CORS rule that lets the partner upload page put blocks into drop zones from a browser: the local server sets
it on Azurite (against Azurite, through the real SDK), and it is the same rule the templates give the ingest account
in Azure. The browser tests in test_upload_page.py upload through exactly this rule."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from azure.storage.blob import BlobServiceClient, CorsRule

from devtools import localhost
from shared.platform.storage import (
    UPLOAD_CORS_EXPOSED,
    UPLOAD_CORS_HEADERS,
    UPLOAD_CORS_MAX_AGE,
    UPLOAD_CORS_METHODS,
    Storage,
)
from tests.infra.bicep import BICEP, ROOT, items, node, resource, text, value

if TYPE_CHECKING:
    from tree_sitter import Node


def _descendants(root: Node) -> Iterator[Node]:
    for child in root.children:
        yield child
        yield from _descendants(child)


def _rules(storage: Storage) -> list[CorsRule]:
    return storage.ingest_admin().get_service_properties()["cors"]


def test_the_local_server_lets_the_page_upload_to_azurite_and_keeps_other_rules(storage):
    other = CorsRule(["https://storage-explorer.example"], ["GET"])
    storage.ingest_admin().set_service_properties(cors=[other])

    assert localhost.allow_the_page_on_azurite(storage, 7071) == ["http://127.0.0.1:7071", "http://localhost:7071"]
    kept, upload = _rules(storage)
    assert kept.allowed_origins == "https://storage-explorer.example" and kept.allowed_methods == "GET"
    assert upload.allowed_origins.split(",") == ["http://127.0.0.1:7071", "http://localhost:7071"]
    assert upload.allowed_methods.split(",") == list(UPLOAD_CORS_METHODS)
    assert upload.allowed_headers.split(",") == list(UPLOAD_CORS_HEADERS)

    assert localhost.allow_the_page_on_azurite(storage, 7071) == [], "a second start adds nothing"
    assert localhost.allow_the_page_on_azurite(storage, 7072) == ["http://127.0.0.1:7072", "http://localhost:7072"]
    assert len(_rules(storage)) == 2, "another port joins the same rule (an account holds five at most)"
    storage.ingest_admin().set_service_properties(cors=[])


def test_with_func_start_the_rule_is_added_without_serving(app_env, storage):
    """`func start` serves the page itself: `--cors-only` adds the rule and exits, naming no value but origins."""
    app_env()
    storage.ingest_admin().set_service_properties(cors=[])
    done = subprocess.run([sys.executable, "-m", "devtools.localhost", "--cors-only", "--port", "7071"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "http://127.0.0.1:7071" in done.stdout and "serving" not in done.stdout
    [upload] = _rules(storage)
    assert upload.allowed_origins.split(",") == ["http://127.0.0.1:7071", "http://localhost:7071"]
    storage.ingest_admin().set_service_properties(cors=[])


def test_the_local_server_leaves_a_real_account_alone():
    remote = Storage(ingest_blobs=BlobServiceClient("https://stfdpinexample.blob.core.windows.net"),
                     platform_blobs=None, platform_tables=None)  # type: ignore[arg-type]
    assert localhost.allow_the_page_on_azurite(remote, 7071) == [], "Azure's rule comes from the templates"


def test_azure_gets_the_same_rule_from_the_templates():
    account = resource(BICEP / "modules" / "storage-ingest.bicep", "blobService").body
    rules = node(account, "properties.cors.corsRules")  # `empty(corsOrigins) ? [] : [ {...} ]`
    assert rules is not None and text(rules).startswith("empty(corsOrigins) ? [] :")
    [rule] = [found for found in _descendants(rules) if found.type == "object"]
    assert [text(m) for m in items(node(rule, "allowedMethods"))] == list(UPLOAD_CORS_METHODS)
    assert [text(h) for h in items(node(rule, "allowedHeaders"))] == list(UPLOAD_CORS_HEADERS)
    assert [text(h) for h in items(node(rule, "exposedHeaders"))] == list(UPLOAD_CORS_EXPOSED)
    assert value(rule, "maxAgeInSeconds") == str(UPLOAD_CORS_MAX_AGE)
    assert value(rule, "allowedOrigins") == "corsOrigins"
