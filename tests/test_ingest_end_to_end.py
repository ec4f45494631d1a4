"""A partner's file lands in its drop zone; moments later pseudonymised, minimised rows are in curated storage,
the raw file is gone, and the partner has a receipt. Run for every dataset of every seed programme's policy,
against Azurite, through the real function entry point."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from devtools import synthetic
from shared.policy.loader import load_policy
from tests.conftest import POLICIES, TEST_ROOT_KEY
from tests.helpers import (
    curated_files,
    curated_rows,
    deliver_all,
    everything_stored,
    ledger_rows,
    raw_blobs,
    receipts,
    upload,
)


def _datasets():
    for name, path in POLICIES.items():
        policy = load_policy(path)
        for partner_id, partner in policy.partners.items():
            for dataset in partner.datasets:
                yield pytest.param(name, partner_id, dataset, id=f"{name}:{partner_id}:{dataset}")


def brief_pseudonym(id_type: str, value: str) -> str:
    """The brief's formula, written out independently of shared/identity/pseudonymise.py."""
    domain_key = hmac.new(TEST_ROOT_KEY, b"fdp:domain:subject", hashlib.sha256).digest()
    return hmac.new(domain_key, f"{id_type}:{value}".encode(), hashlib.sha256).digest()[:16].hex()


def forbidden_values(file: synthetic.SyntheticFile, policy, partner: str, dataset: str) -> set[str]:
    """Identifiers, direct identifiers, full postcodes and full dates of birth from the input."""
    contract = policy.partners[partner].datasets[dataset].contract
    kept_dates = {row[c.name] for row in file.rows for c in contract.columns if c.type == "date"}
    values: set[str] = set()
    for row in file.rows:
        for column in contract.columns:
            value = row[column.name]
            if column.role in ("identifier", "direct"):
                values.add(value)
            elif column.role == "quasi" and column.generalise.startswith("postcode"):
                values.update({value, value.replace(" ", "")})
            elif column.role == "quasi" and value not in kept_dates:
                values.add(value)
    return {v for v in values if len(v) >= 5}


@pytest.mark.parametrize(("policy_name", "partner", "dataset"), list(_datasets()))
def test_synthetic_upload_is_ingested_end_to_end(app_env, storage, all_logs, policy_name, partner, dataset):
    policy = app_env(policy_name)
    file = synthetic.generate(policy, partner, dataset, rows=60, seed=7)
    upload(storage, partner, file.blob_name, file.content)

    deliver_all(storage)

    assert raw_blobs(storage) == [], "the raw file is deleted once the upload is processed"
    [receipt] = receipts(storage)
    spec = policy.partners[partner].datasets[dataset]
    consenting = [row for row in file.rows if spec.basis != "consent" or row["consent"] == "Y"]
    assert receipt["status"] == "accepted"
    assert receipt["rows"]["read"] == 60
    assert receipt["rows"]["stored"] == len(consenting)
    assert receipt["rows"]["no_consent"] == 60 - len(consenting)

    rows = curated_rows(storage)
    assert len(rows) == len(consenting)
    assert all(f.startswith(f"{dataset}/purge_month=") for f in curated_files(storage))
    first = spec.contract.identifiers[0]
    id_type = f"{first.id_type}:{partner}" if first.id_type.startswith("partner_") else first.id_type
    expected = {brief_pseudonym(id_type, row[first.name].strip().upper() if first.id_type == "upn"
                                else row[first.name].strip()) for row in consenting}
    assert {row[f"{first.name}_pseudonym"] for row in rows} == expected

    [ledger] = ledger_rows(storage)
    assert ledger["status"] == "accepted"
    assert ledger["key_version"] == "local-development"
    assert json.loads(ledger["counts"])["stored"] == len(consenting)

    stored = everything_stored(storage)
    logs = "\n".join(record.getMessage() for record in all_logs.records)
    leaked = [v for v in forbidden_values(file, policy, partner, dataset) if v in stored or v in logs]
    assert leaked == [], f"{len(leaked)} raw values reached storage or logs"
