"""Deployed sign-in: the Entra ID app registration with the three app roles the code checks, App Service
authentication on the function app, and the paths it leaves open, read from the templates (tree-sitter-bicep,
offline: no Bicep CLI, no Azure, no tenant). Without these, every admin call after `azd up` would get 401."""

from __future__ import annotations

import json
import re
from pathlib import Path

from devtools.eventgrid import indexed_functions
from shared.platform.auth import ROLES
from tests.infra.bicep import (
    BICEP,
    ROOT,
    bicep_files,
    extensions,
    items,
    node,
    resource,
    resources,
    text,
    value,
    variable,
)

MODULES = BICEP / "modules"
ENTRA = MODULES / "entra-app.bicep"
APP = MODULES / "functionapp.bicep"
MAIN = BICEP / "main.bicep"
GRAPH_TYPES = "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0"
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
DEPLOY_GUIDE = ROOT / "docs" / "deploy.md"


def _auth_settings():
    settings = resource(APP, "authSettings")
    assert value(settings.body, "name") == "'authsettingsV2'"
    return settings.body


def test_the_registration_declares_exactly_the_three_roles_the_code_checks_with_ids_that_survive_redeployment():
    declared = [text(node(role, "value")) for role in items(variable(ENTRA, "roles"))]
    assert sorted(declared) == sorted(ROLES)
    [role] = items(node(resource(ENTRA, "application").body, "appRoles"))
    assert value(role, "value") == "role.value"
    assert value(role, "isEnabled") == "true"
    assert value(role, "allowedMemberTypes") == "[ 'User' ]", "users and groups hold the roles, not other apps"
    assert value(role, "id") == "roleIds[role.value]"
    ids = {prop.children[0].text.decode().strip("'"): prop.children[-1].text.decode()
           for prop in variable(ENTRA, "roleIds").children if prop.type == "object_property"}
    assert ids == {name: f"guid(uniqueName, '{name}')" for name in ROLES}, "derived, so a redeployment keeps them"
    assert value(resource(ENTRA, "roleAssignments").body, "appRoleId") == "roleIds[assignment.role]"


def test_only_users_and_groups_assigned_a_role_can_get_a_token():
    principal = resource(ENTRA, "servicePrincipal").body
    assert value(principal, "appId") == "application.appId"
    assert value(principal, "appRoleAssignmentRequired") == "true"
    assert value(resource(ENTRA, "application").body, "signInAudience") == "'AzureADMyOrg'"


def test_the_registration_has_no_secret_the_function_apps_identity_is_its_credential():
    application = resource(ENTRA, "application").body
    assert value(application, "passwordCredentials") is None and value(application, "keyCredentials") is None
    credential = resource(ENTRA, "appIdentity")
    assert credential.type == "federatedIdentityCredentials"
    assert value(credential.body, "subject") == "identityPrincipalId"
    assert value(credential.body, "issuer") == "issuer"
    assert text(variable(ENTRA, "issuer")) == "'${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'"
    assert value(credential.body, "audiences") == "[ tokenExchangeAudience ]"
    assert text(variable(ENTRA, "tokenExchangeAudience")) == "api://AzureADTokenExchange"
    main = MAIN.read_text()
    assert re.search(r"module signIn 'modules/entra-app.bicep'.*?identityPrincipalId: identity.outputs.principalId",
                     main, re.S), "the credential trusts the function app's own identity"
    settings = resource(APP, "settings").body
    assert value(settings, "properties.OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID") == "identityClientId"
    assert value(_auth_settings(), "properties.identityProviders.azureActiveDirectory.registration"
                                   ".clientSecretSettingName") == "'OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID'"
    for path in bicep_files():
        assert "passwordCredentials" not in path.read_text() and "addPassword" not in path.read_text(), path.name


def test_app_service_authentication_turns_away_every_caller_without_a_token_for_the_registration():
    auth = _auth_settings()
    assert value(auth, "properties.platform.enabled") == "true"
    assert value(auth, "properties.globalValidation.requireAuthentication") == "true"
    assert value(auth, "properties.globalValidation.unauthenticatedClientAction") == "'Return401'"
    assert value(auth, "properties.httpSettings.requireHttps") == "true"
    entra = "properties.identityProviders.azureActiveDirectory"
    assert value(auth, f"{entra}.enabled") == "true"
    assert value(auth, f"{entra}.registration.clientId") == "signInClientId"
    assert value(auth, f"{entra}.registration.openIdIssuer") == "signInIssuer"
    assert value(auth, f"{entra}.validation.allowedAudiences") == "[ signInClientId, signInIdentifierUri ]"
    assert value(auth, "properties.login.tokenStore.enabled") == "false", "no one's tokens are kept"
    main = MAIN.read_text()
    for param, output in (("signInClientId", "clientId"), ("signInIssuer", "issuer"),
                          ("signInIdentifierUri", "identifierUri")):
        assert re.search(rf"module functionApp .*?{param}: signIn.outputs.{output}\n", main, re.S), param
    settings = resource(APP, "settings").body
    assert value(settings, "properties.WEBSITE_AUTH_ENABLED") is None, (
        "the platform sets it when authentication is on; set by hand it would make the code trust a forged header")


def test_tokens_are_version_2_and_the_azure_cli_may_ask_for_one_without_a_consent_prompt():
    api = node(resource(ENTRA, "application").body, "api")
    assert value(api, "requestedAccessTokenVersion") == "2", "v2 tokens carry the issuer App Service checks"
    [scope] = items(node(api, "oauth2PermissionScopes"))
    assert value(scope, "id") == "scopeId" and value(scope, "isEnabled") == "true"
    [client] = items(node(api, "preAuthorizedApplications"))
    assert value(client, "appId") == "azureCliAppId" and value(client, "delegatedPermissionIds") == "[ scopeId ]"
    assert text(variable(ENTRA, "azureCliAppId")) == AZURE_CLI
    allowed = value(_auth_settings(), "properties.identityProviders.azureActiveDirectory.validation"
                                      ".defaultAuthorizationPolicy.allowedApplications")
    assert allowed == "[ signInClientId, azureCliAppId ]", "tokens issued to any other client are refused"
    assert text(variable(APP, "azureCliAppId")) == AZURE_CLI


SIGNED_IN_PAGES = ("/api/console", "/api/console/assets/x")
"""The operator console: no function key (a browser cannot send one when it opens a page), but a sign-in; the
admin functions it calls need both."""


def _excluded(path: str, patterns: list[str]) -> bool:
    """App Service authentication's excludedPaths: an exact path, or a prefix ending in `/*`."""
    return any(path == p or (p.endswith("/*") and path.startswith(p[:-1])) for p in patterns)


def test_exactly_the_anonymous_functions_are_left_open_to_callers_without_a_token():
    """Partners reach the upload page with their upload link, not a sign-in, and Event Grid delivers with the
    webhook's system key: those paths, and no admin function, are excluded from authentication. The operator
    console's page needs no function key but stays behind the sign-in."""
    patterns = [text(p) for p in items(variable(APP, "anonymousPaths"))]
    assert value(_auth_settings(), "properties.globalValidation.excludedPaths") == "anonymousPaths"
    opened, closed, event_grid = [], [], False
    for function in indexed_functions().values():
        bindings = json.loads(function.get_function_json())["bindings"]
        event_grid |= any(b["type"] == "eventGridTrigger" for b in bindings)
        for trigger in (b for b in bindings if b["type"] == "httpTrigger"):
            path = "/api/" + re.sub(r"\{\w+(:[^}]*)?\}", "x", trigger["route"])
            (opened if trigger["authLevel"] == "ANONYMOUS" else closed).append(path)
    assert opened and closed
    console = [p for p in opened if p in SIGNED_IN_PAGES]
    assert sorted(console) == sorted(SIGNED_IN_PAGES), "the console's page and assets"
    assert [p for p in console if _excluded(p, patterns)] == [], "the console is behind the sign-in"
    opened = [p for p in opened if p not in SIGNED_IN_PAGES]
    assert [p for p in opened if not _excluded(p, patterns)] == [], "an anonymous function would need a sign-in"
    assert [p for p in closed if _excluded(p, patterns)] == [], "an admin function is open without a sign-in"
    assert event_grid and _excluded("/runtime/webhooks/eventgrid", patterns)
    used = {p for p in patterns if any(_excluded(path, [p]) for path in [*opened, "/runtime/webhooks/eventgrid"])}
    assert used == set(patterns), "every excluded path serves an anonymous function"


def test_the_graph_extension_is_declared_where_graph_resources_are_and_pinned_to_its_release():
    config = json.loads((BICEP / "bicepconfig.json").read_text())
    assert config["extensions"] == {"microsoftGraphV1": GRAPH_TYPES}
    for path in bicep_files():
        graph = any(r.type.startswith("Microsoft.Graph/") for r in resources(path))
        assert extensions(path) == (["microsoftGraphV1"] if graph else []), path.name
    assert {r.type for r in resources(ENTRA)} >= {
        "Microsoft.Graph/applications", "Microsoft.Graph/servicePrincipals", "Microsoft.Graph/appRoleAssignedTo"}


def test_the_deploy_guide_reads_only_what_the_deployment_outputs_and_names_every_role():
    guide = DEPLOY_GUIDE.read_text()
    outputs = set(re.findall(r"^output (\w+) ", MAIN.read_text(), re.M))
    read = set(re.findall(r"azd env get-value (\w+)", guide))
    assert {"AUTH_CLIENT_ID", "AUTH_SCOPE", "AUTH_SERVICE_PRINCIPAL_ID", "FUNCTION_APP_HOSTNAME"} <= read
    assert read <= outputs, f"the guide reads outputs main.bicep does not write: {sorted(read - outputs)}"
    for role in ROLES:
        assert f"`{role}`" in guide, role
    readme = (ROOT / "README.md").read_text()
    assert "(docs/deploy.md)" in readme and Path(DEPLOY_GUIDE).exists()
