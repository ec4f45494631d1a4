"""The access pack's readable summary reads as the policy labels things: datasets, columns and coded values by
what they mean, not by the keys and codes the platform stores."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date

from shared.policy.loader import load_policy
from shared.rights import access
from tests.conftest import POLICIES

PARTNER, DATASET = "family-support-charity", "sessions"


def pack_for_one_session() -> zipfile.ZipFile:
    """A pack holding one of a person's LEAP sessions, its row as curated Parquet stores it."""
    policy = load_policy(POLICIES["leap"])
    stored = {"subject_id": "s" * 32, "_ingest_id": "i1", "_purge_month": "2049-12",
              "family_ref_pseudonym": "f" * 32, "nhs_number_pseudonym": "n" * 32,
              "child_postcode_sector": "SW9 8", "date_of_birth_age_months": 14, "ethnicity": "WBRI",
              "disability": False, "service": "making_it_real", "session_date": date(2024, 10, 1),
              "sessions_attended": 6, "asq_communication": None}
    rows = access.readable_rows([stored], {"n" * 32: "the NHS number given"}, {"f" * 32})
    pack = access.build_pack(policy, {(PARTNER, DATASET): rows}, ["NHS number"])
    return zipfile.ZipFile(io.BytesIO(pack))


def test_the_readable_summary_uses_the_policys_labels():
    summary = pack_for_one_session().read("summary.md").decode()
    assert "## Parenting and family support sessions (from Family support charity" in summary
    assert "Child's postcode (postcode sector only)" in summary and "LEAP service" in summary
    assert "Child's date of birth (as an age in months at session date)" in summary
    _header, _, cells = [line for line in summary.splitlines() if line.startswith("|")]
    assert "Making it REAL" in cells and "White British" in cells and "| No |" in cells, "codes by what they mean"
    assert "SW9 8" in cells
    assert "the NHS number given" in cells and "a linked identifier" in cells
    for key in ("child_postcode_sector", "date_of_birth_age_months", "making_it_real", "session_date",
                "kept_until_end_of", "sessions_attended"):
        assert key not in summary, f"{key} is a storage key, not what a person reads"


def test_summary_json_keeps_the_dataset_key_beside_its_title():
    summary = json.loads(pack_for_one_session().read("summary.json"))
    [held] = summary["datasets"]
    assert (held["dataset"], held["title"]) == (DATASET, "Parenting and family support sessions")
    assert held["kept_until_end_of"] == ["2049-12"]
    assert "Sessions attended" in held["categories_of_data"]
