"""The function app: registers the blueprints in functions/, nothing else."""

import azure.functions as func

from functions.ingest import bp as ingest_blueprint

app = func.FunctionApp()
app.register_functions(ingest_blueprint)
