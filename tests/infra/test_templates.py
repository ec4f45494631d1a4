"""infra/bicep deploys the platform and makes the notices' promises structural: every file parses, checkov finds
nothing it has not been told why, and the templates say what the promises need (region, no shared key, purge
protection, no public access, private networking for every programme, the audit anchor's key and write-once
container, the Event Grid filter). Offline: no Bicep CLI, no Azure."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from shared.platform.storage import AUDIT_CHECKPOINTS
from shared.policy.loader import EU_REGIONS, UK_REGIONS, load_policy
from tests.infra.bicep import (
    BICEP,
    ROOT,
    all_nodes,
    bicep_files,
    error_nodes,
    parse,
    readable_copy,
    resource,
    resources,
    value,
)

MODULES = BICEP / "modules"
CHECKOV = ROOT / ".venv-infra" / "bin" / "checkov"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(BICEP)))
def test_every_bicep_file_parses_without_errors(path):
    tree = parse(path)
    problems = [f"line {n.start_point[0] + 1}: {n.type}" for n in error_nodes(tree.root_node)]
    assert problems == [], problems


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory) -> dict:
    if not CHECKOV.exists():
        pytest.fail("checkov is not installed: `make install` creates .venv-infra from requirements-infra.txt")
    templates = readable_copy(tmp_path_factory.mktemp("checkov") / "bicep")
    result = subprocess.run([str(CHECKOV), "-d", str(templates), "--framework", "bicep", "--skip-download",
                             "--output", "json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_failed_check(checkov_report):
    summary = checkov_report["summary"]
    failed = [(c["check_id"], c["file_path"], c["resource"]) for c in checkov_report["results"]["failed_checks"]]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 25, "checkov scanned the templates"


def test_every_skip_is_justified_where_it_stands(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    assert all(len(c["check_result"].get("suppress_comment", "").strip()) >= 20 for c in skipped)
    written = set()
    for path in bicep_files():
        for match in re.finditer(r"checkov:skip=([A-Z0-9_]+):(.*)", path.read_text()):
            assert len(match[2].strip()) >= 20, f"{path.name}: {match[1]} has no reason"
            written.add((path.name, match[1]))
    used = {(c["file_path"].rsplit("/", 1)[-1], c["check_id"]) for c in skipped}
    assert written == used, "a skip comment suppresses no check (remove it) or a skip has no comment"


def test_location_is_restricted_to_uk_and_eu_regions():
    main = (BICEP / "main.bicep").read_text()
    allowed = re.search(r"@allowed\(\[(.*?)\]\)\s*@description\([^)]*\)\s*param location string", main, re.S)
    assert allowed, "the location parameter carries an @allowed list"
    assert set(re.findall(r"'([a-z]+)'", allowed[1])) == set(UK_REGIONS) | set(EU_REGIONS)


def test_every_resource_is_created_in_the_location_parameter():
    located = 0
    for path in bicep_files():
        for found in resources(path):
            where = value(found.body, "location")
            if where is None:
                continue
            located += 1
            assert where in ("location", "'global'"), f"{path.name}: {found.name} is placed in {where}"
            if where == "'global'":
                # Private DNS zones and action groups exist only globally; an action group holds where alerts
                # go (a role, role mailboxes), never data.
                assert found.type.startswith(("Microsoft.Network/privateDnsZones",
                                              "Microsoft.Insights/actionGroups")), found.name
    assert located >= 10


@pytest.mark.parametrize("param_file", sorted((BICEP / "parameters").glob("*.json")), ids=lambda p: p.stem)
def test_parameter_files_deploy_each_programme_where_its_notice_says(param_file):
    parameters = json.loads(param_file.read_text())["parameters"]
    policy = load_policy(ROOT / parameters["policyFile"]["value"])
    assert parameters["location"]["value"] == policy.programme.region


def test_one_parameter_file_per_programme_policy():
    files = {p.name.removesuffix(".parameters.json") for p in (BICEP / "parameters").glob("*.json")}
    assert files == {p.stem for p in (ROOT / "policies").glob("*.yaml")}


def test_region_policy_is_assigned_on_the_resource_group():
    assignment = resource(MODULES / "policy.bicep", "assignment")
    assert "e56962a6-4747-49cd-b67b-bf8b01975c4c" in (MODULES / "policy.bicep").read_text()  # Allowed locations
    assert value(assignment.body, "properties.enforcementMode") == "'Default'"
    main = (BICEP / "main.bicep").read_text()
    assert re.search(r"module residency 'modules/policy.bicep'.*?allowedLocations: \[ location \]", main, re.S)


def test_platform_account_has_no_shared_key_and_no_public_access():
    account = resource(MODULES / "storage-platform.bicep", "account").body
    assert value(account, "properties.allowSharedKeyAccess") == "false"
    assert value(account, "properties.defaultToOAuthAuthentication") == "true"
    assert value(account, "properties.allowBlobPublicAccess") == "false"
    assert value(account, "properties.minimumTlsVersion") == "'TLS1_2'"
    assert value(account, "properties.supportsHttpsTrafficOnly") == "true"
    assert value(account, "properties.encryption.requireInfrastructureEncryption") == "true"
    assert value(account, "properties.publicNetworkAccess") == "privateNetworking ? 'Disabled' : 'Enabled'"
    containers = resource(MODULES / "storage-platform.bicep", "blobContainers").body
    assert value(containers, "properties.publicAccess") == "'None'"


def test_only_the_ingest_account_allows_shared_key_and_deletes_for_real():
    accounts = [r for p in bicep_files() for r in resources(p) if r.type == "Microsoft.Storage/storageAccounts"
                and value(r.body, "properties.allowSharedKeyAccess") is not None]
    assert {r.file.name for r in accounts if value(r.body, "properties.allowSharedKeyAccess") == "true"} == {
        "storage-ingest.bicep"}
    ingest = MODULES / "storage-ingest.bicep"
    blobs = resource(ingest, "blobService").body
    assert value(blobs, "properties.deleteRetentionPolicy.enabled") == "false"
    rules = (ingest).read_text()
    assert re.search(r"prefixMatch: \[ 'drop-' \].*?daysAfterCreationGreaterThan: 7", rules, re.S)
    assert value(resource(ingest, "account").body, "properties.allowBlobPublicAccess") == "false"


def test_drop_zone_lifecycle_deletes_snapshots_and_versions_a_link_could_leave_behind():
    """A create-only link can snapshot its own upload, which would block deleting it and outlive it: the drop
    zone rule deletes snapshots (before the base blob, which Azure cannot delete while they exist) and versions,
    for block and append blobs alike."""
    ingest = MODULES / "storage-ingest.bicep"
    [drop_rule] = [rule for rule in _rule_objects(ingest)
                   if "'drop-'" in (value(rule, "definition.filters.prefixMatch") or "")]
    assert value(drop_rule, "enabled") == "true"
    assert set(re.findall(r"'(\w+)'", value(drop_rule, "definition.filters.blobTypes") or "")) == {
        "blockBlob", "appendBlob"}
    base = int(value(drop_rule, "definition.actions.baseBlob.delete.daysAfterCreationGreaterThan") or 0)
    snapshots = value(drop_rule, "definition.actions.snapshot.delete.daysAfterCreationGreaterThan")
    versions = value(drop_rule, "definition.actions.version.delete.daysAfterCreationGreaterThan")
    assert snapshots is not None and versions is not None, "snapshots and versions are deleted too"
    assert int(snapshots) < base and int(versions) < base, "they go before the base blob, which they would block"
    assert value(resource(ingest, "blobService").body, "properties.isVersioningEnabled") == "false"


def _rule_objects(path):
    """The lifecycle policy's rules: the objects of its `rules` array."""
    from tests.infra.bicep import _property

    node = resource(path, "lifecycle").body
    for key in ("properties", "policy", "rules"):
        node = _property(node, key)
    return [child for child in node.children if child.type == "object"]


def test_key_vault_is_rbac_only_with_purge_protection():
    vault = resource(MODULES / "keyvault.bicep", "vault").body
    assert value(vault, "properties.enableRbacAuthorization") == "true"
    assert value(vault, "properties.enableSoftDelete") == "true"
    assert value(vault, "properties.enablePurgeProtection") == "true"
    assert value(vault, "properties.enabledForTemplateDeployment") == "false"
    assert value(vault, "properties.enabledForDeployment") == "false"
    assert resource(MODULES / "keyvault.bicep", "diagnostics")


def test_event_grid_subscription_serves_every_drop_zone_with_retries_and_dead_letters():
    subscription = resource(MODULES / "eventgrid-subscription.bicep", "subscription").body
    assert value(subscription, "properties.filter.subjectBeginsWith") == "'/blobServices/default/containers/drop-'"
    assert value(subscription, "properties.filter.includedEventTypes") == "[ 'Microsoft.Storage.BlobCreated' ]"
    assert value(subscription, "properties.retryPolicy.maxDeliveryAttempts") == "30"
    assert value(subscription, "properties.deadLetterWithResourceIdentity.deadLetterDestination.endpointType") == \
        "'StorageBlob'"
    assert "@secure()" in (MODULES / "eventgrid-subscription.bicep").read_text(), "the endpoint carries a key"


def test_function_app_uses_identity_for_storage_and_the_key_vault():
    app = MODULES / "functionapp.bicep"
    settings = resource(app, "settings").body
    assert value(settings, "properties.AzureWebJobsStorage__credential") == "'managedidentity'"
    assert value(settings, "properties.FDP_KEY_VAULT_URL") == "keyVaultUri"
    assert value(settings, "properties.FDP_LOCAL_ROOT_KEY") is None
    site = resource(app, "app").body
    assert value(site, "properties.functionAppConfig.runtime.name") == "'python'"
    assert value(site, "properties.httpsOnly") == "true"
    assert value(resource(app, "plan").body, "sku.tier") == "'FlexConsumption'"
    insights = resource(MODULES / "monitoring.bicep", "appInsights").body
    assert value(insights, "properties.DisableLocalAuth") == "true"


def test_data_roles_are_least_privilege():
    roles = (MODULES / "roles.bicep").read_text()
    assert "Owner'" not in roles.replace("storageBlobDataOwner", "")
    for role in ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
                 "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "4633458b-17de-408a-b874-0445c86b69e6"):
        assert role in roles
    assert "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" not in roles  # Owner
    assert "b24988ac-6180-42a0-ab88-20f7382dd24c" not in roles  # Contributor
    assert len([n for n in all_nodes(MODULES / "roles.bicep") if n.type == "resource_declaration"]) == 12


def _bicep_default(text: str, name: str) -> str:
    match = re.search(rf"^param {name} \w+ = (.+)$", text, re.M)
    assert match, f"main.bicep declares {name} with a default"
    return match[1].strip()


def test_private_networking_is_the_default_for_every_programme_with_public_access_an_explicit_opt_out():
    main = (BICEP / "main.bicep").read_text()
    assert _bicep_default(main, "allowPublicNetworkAccess") == "false"
    assert re.search(r"@description\('Opt-out of private networking[^\n]*\n\s*param allowPublicNetworkAccess bool",
                     main), "the opt-out says what it is where it is declared"
    assert not re.search(r"^param privateNetworking", main, re.M), "private networking is not a choice to opt into"
    assert re.search(r"^var privateNetworking = !allowPublicNetworkAccess$", main, re.M)
    assert re.search(r"module network 'modules/network.bicep' = if \(privateNetworking\)", main)
    for module in ("platform", "vault"):
        assert re.search(rf"module {module} .*?privateNetworking: privateNetworking", main, re.S)
    azd = json.loads((BICEP / "main.parameters.json").read_text())["parameters"]
    assert "privateNetworking" not in azd
    assert azd["allowPublicNetworkAccess"]["value"] == "${FDP_ALLOW_PUBLIC_NETWORK_ACCESS=false}"
    for param_file in sorted((BICEP / "parameters").glob("*.json")):
        parameters = json.loads(param_file.read_text())["parameters"]
        assert "privateNetworking" not in parameters, param_file.name
        assert parameters.get("allowPublicNetworkAccess", {"value": False})["value"] is False, (
            f"{param_file.name} opts out of private networking")


def test_the_audit_key_can_only_sign_and_verify_and_is_never_exportable():
    vault_file = MODULES / "keyvault.bicep"
    vault = resource(vault_file, "vault").body
    assert value(vault, "properties.sku.name") == "'premium'", "HSM-protected keys need Premium"
    key = resource(vault_file, "auditKey")
    assert key.type == "Microsoft.KeyVault/vaults/keys"
    assert value(key.body, "properties.kty") == "'EC-HSM'"
    assert value(key.body, "properties.curveName") == "'P-256'"
    assert value(key.body, "properties.keyOps") == "[ 'sign', 'verify' ]"
    assert value(key.body, "properties.attributes.exportable") == "false"
    assert value(key.body, "properties.release_policy") is None
    assert value(key.body, "properties.rotationPolicy.attributes.expiryTime") is not None


def test_the_function_app_may_sign_with_the_audit_key_and_nothing_more():
    roles = MODULES / "roles.bicep"
    assignment = resource(roles, "vaultAuditKey").body
    assert value(assignment, "scope") == "auditKey", "on the one key, not the whole vault"
    assert "roles.keyVaultCryptoUser" in value(assignment, "properties.roleDefinitionId")
    assert "keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'" in roles.read_text()
    assert "Crypto Officer" not in roles.read_text() and "14b46e9e-c2b7-41b4-b07b-48a6ebf60603" not in roles.read_text()
    settings = resource(MODULES / "functionapp.bicep", "settings").body
    assert value(settings, "properties.FDP_AUDIT_KEY_NAME") == "auditKeyName"
    assert value(settings, "properties.FDP_LOCAL_AUDIT_KEY_FILE") is None


def test_audit_checkpoints_are_kept_in_a_write_once_container():
    platform = MODULES / "storage-platform.bicep"
    container = resource(platform, "checkpointContainer")
    assert value(container.body, "name") == f"'{AUDIT_CHECKPOINTS}'"
    assert value(container.body, "parent") == "blobService"
    assert value(container.body, "properties.publicAccess") == "'None'"
    policy = resource(platform, "checkpointRetention")
    assert policy.type == "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"
    assert value(policy.body, "parent") == "checkpointContainer"
    assert value(policy.body, "properties.immutabilityPeriodSinceCreationInDays") == "checkpointRetentionDays"
    assert value(policy.body, "properties.allowProtectedAppendWrites") == "false"
    assert value(policy.body, "properties.allowProtectedAppendWritesAll") == "false"
    text = platform.read_text()
    assert "@minValue(1)" in text.split("param checkpointRetentionDays")[0].rsplit("\n", 3)[-3]
    assert "audit-checkpoints/" not in text, "no lifecycle rule deletes checkpoints"
    main = (BICEP / "main.bicep").read_text()
    assert _bicep_default(main, "auditCheckpointRetentionDays") == "2190"


def test_the_platform_account_holds_every_container_and_table_the_code_uses():
    """The templates and shared/platform/storage.py name the same containers and tables (the checkpoint container
    is declared on its own, with its immutability policy)."""
    from shared.platform.storage import PLATFORM_CONTAINERS, PLATFORM_TABLES

    text = (MODULES / "storage-platform.bicep").read_text()
    containers = set(re.findall(r"'([a-z-]+)'", re.search(r"var containers = \[(.*)\]", text).group(1)))
    tables = set(re.findall(r"'([a-z]+)'", re.search(r"var tables = \[(.*)\]", text).group(1)))
    assert set(PLATFORM_CONTAINERS) - {AUDIT_CHECKPOINTS} <= containers
    assert tables == set(PLATFORM_TABLES)


ALERTS = MODULES / "alerts.bicep"
BREACH_SIGNALS = ("auditVerifyFailed", "uploadsRefusedInBulk", "linkUsedAfterRevocation", "accessBurst",
                  "repeatedAuthFailures")


def test_breach_signals_are_log_alerts_over_the_workspace_that_tell_the_breach_action_group():
    """Issue 16: alert rules for an audit chain failing verification, uploads refused in bulk, links used after
    revocation, bursts of access or export, and repeated 401/403 (docs/breaches.md)."""
    group = resource(ALERTS, "breachTeam")
    assert group.type == "Microsoft.Insights/actionGroups" and value(group.body, "properties.enabled") == "true"
    assert "armRoleReceivers" in value(group.body, "properties")
    for name in BREACH_SIGNALS:
        rule = resource(ALERTS, name)
        assert rule.type == "Microsoft.Insights/scheduledQueryRules", name
        assert value(rule.body, "kind") == "'LogAlert'"
        assert value(rule.body, "properties.scopes") == "[ logAnalyticsId ]"
        assert value(rule.body, "properties.enabled") == "true"
        assert value(rule.body, "properties.actions.actionGroups") == "[ breachTeam.id ]"
        assert value(rule.body, "properties.autoMitigate") == "false", "a breach signal is closed by a person"
    main = (BICEP / "main.bicep").read_text()
    assert re.search(r"module alerts 'modules/alerts.bicep'.*?logAnalyticsId: monitoring\.outputs\.logAnalyticsId.*?"
                     r"ingestStorageName: ingest\.outputs\.name", main, re.S)


def _alert_query(name: str) -> str:
    rule = resource(ALERTS, name)
    criteria = value(rule.body, "properties.criteria.allOf")
    return re.search(r"query: '(.*)'", criteria)[1]


def test_each_alert_counts_an_event_the_code_emits():
    """The queries match the stable log events by the names the code logs them under (a rename breaks this)."""
    from functions.http import ADMIN_CALL_EVENT
    from shared.ingest.pipeline import REJECTED_EVENT
    from shared.platform.checkpoints import VERIFY_FAILED_EVENT

    assert f'startswith "{VERIFY_FAILED_EVENT}"' in _alert_query("auditVerifyFailed")
    assert f'startswith "{REJECTED_EVENT}"' in _alert_query("uploadsRefusedInBulk")
    assert f'startswith "{ADMIN_CALL_EVENT}"' in _alert_query("accessBurst")
    assert 'ResultCode in ("401", "403")' in _alert_query("repeatedAuthFailures")
    revoked = _alert_query("linkUsedAfterRevocation")
    assert '"${ingestStorageName}"' in revoked and 'AuthenticationType == "SAS"' in revoked
    assert "StatusCode == 403" in revoked and "CallerIpAddress" not in revoked


def test_the_access_burst_watches_actions_that_exist():
    """Every action the burst rule counts is one an HTTP function audits (admin_call's action names)."""
    actions = set()
    for path in (ROOT / "functions").glob("*.py"):
        actions |= set(re.findall(r'admin_call\(\s*req,\s*[A-Za-z_.()]+,\s*"([a-z._]+)"', path.read_text()))
    watched = re.findall(r"'([a-z._]+)'", re.search(r"param accessActions array = \[(.*?)\]", ALERTS.read_text(),
                                                    re.S)[1])
    assert {"extract.create", "extract.download", "rights.request.create", "breach.affected.rows"} <= set(watched)
    assert set(watched) <= actions, set(watched) - actions


def test_sampling_and_diagnostics_keep_every_event_an_alert_counts():
    """Adaptive sampling would drop log lines (traces) and so undercount; the ingest account logs refused writes."""
    host = json.loads((ROOT / "host.json").read_text())
    excluded = host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert {"Request", "Trace"} <= set(excluded)
    diagnostics = resource(MODULES / "storage-ingest.bicep", "blobDiagnostics")
    assert "categoryGroup: 'allLogs'" in value(diagnostics.body, "properties.logs")
