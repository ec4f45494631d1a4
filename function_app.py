"""The function app: registers the blueprints in functions/, nothing else."""

import azure.functions as func

from functions.audit import bp as audit_blueprint
from functions.breaches import bp as breaches_blueprint
from functions.console import bp as console_blueprint
from functions.datasets import bp as datasets_blueprint
from functions.identity import bp as identity_blueprint
from functions.ingest import bp as ingest_blueprint
from functions.partners import bp as partners_blueprint
from functions.reports import bp as reports_blueprint
from functions.retention import bp as retention_blueprint
from functions.rights import bp as rights_blueprint
from functions.upload import bp as upload_blueprint

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(ingest_blueprint)
app.register_functions(identity_blueprint)
app.register_functions(partners_blueprint)
app.register_functions(rights_blueprint)
app.register_functions(retention_blueprint)
app.register_functions(reports_blueprint)
app.register_functions(upload_blueprint)
app.register_functions(audit_blueprint)
app.register_functions(breaches_blueprint)
app.register_functions(console_blueprint)
app.register_functions(datasets_blueprint)
