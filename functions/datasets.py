"""What analysts can read (role Analyst): each dataset of the programme and its data dictionary, generated from
the policy. The data itself is read with DuckDB or pandas (shared/publishing/dataset_access.py, docs/analysis.md);
these routes say what each table holds. Thin adapters over shared/publishing/dictionary.py."""

import azure.functions as func

from functions.http import admin_call
from shared.platform.auth import ANALYST, Problem
from shared.platform.paging import PageRequest
from shared.publishing.dictionary import dataset_dictionary, dictionary_page
from shared.runtime import platform

bp = func.Blueprint()


@bp.function_name("datasets_list")
@bp.route(route="datasets", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def datasets(req: func.HttpRequest) -> func.HttpResponse:
    return admin_call(req, ANALYST, "datasets.list", lambda caller: (
        200, dictionary_page(platform().policy, PageRequest.from_params("datasets", req.params))))


@bp.function_name("dataset_dictionary")
@bp.route(route="datasets/{name}/dictionary", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def dictionary(req: func.HttpRequest) -> func.HttpResponse:
    def work(caller):
        try:
            return 200, dataset_dictionary(platform().policy, req.route_params["name"])
        except KeyError:
            raise Problem(404, "Not Found", "No dataset of that name is in the programme policy.") from None
    return admin_call(req, ANALYST, "datasets.dictionary", work)
