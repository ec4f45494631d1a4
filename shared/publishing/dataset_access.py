"""Analysis-ready data for evaluators (role Analyst): each dataset as one table, with the person key.

`DatasetAccess.connect()` gives a DuckDB connection with one view per dataset of the policy (hyphens become
underscores: `asq-assessments` is `asq_assessments`). Each view is every partner's curated Parquet for that
dataset read as one table (`union_by_name`, so uploads made under an older agreement still line up), with

- `person_key`: the person the index resolves the row to, the same in every dataset, so datasets join on it;
- `partner`: the partner that sent the row;
- the dataset's stored columns as the policy names them (pseudonyms of partner identifiers are left out: the
  person key is the one key analysts need).

Restricted people (Art 18, or an objection awaiting a decision), everyone on the suppression register, and rows
the index has not placed yet are never in a view. `open_dataset(name)` returns one view as a DuckDB relation and
`dataframe(name)` as a pandas DataFrame. Every open is audited (`analysis.read`: who, which dataset, how many rows,
which data version).

Where the Parquet is read from is chosen by the platform storage setting:
- a connection string (local development, Azurite): each curated file is downloaded once through Storage into a
  private cache folder (kept by blob ETag, so a file rewritten by an erasure or a purge is fetched again and the old
  copy deleted), because DuckDB's `azure` extension cannot reach Azurite reliably;
- an account name (Azure): DuckDB reads `az://` paths itself with its `azure` extension and the credential chain
  (the managed identity or the analyst's own sign-in), so nothing is copied out of the account.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from shared.identity.index import PersonIndex
from shared.ingest import curated
from shared.platform.audit import AuditLog
from shared.platform.auth import Problem
from shared.platform.storage import AUDIT, CURATED, Storage
from shared.policy.loader import Policy
from shared.publishing.analysis import excluded_people

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

PERSON_KEY = "person_key"
PARTNER = "partner"
PERSONS_VIEW = "_analysis_persons"
CACHE_ENV = "FDP_ANALYSIS_CACHE"
"""Where local reads keep their copies of curated files (default: fdp-analysis in the temporary folder)."""


def view_name(dataset: str) -> str:
    """A dataset's view in SQL: `asq-assessments` is `asq_assessments`."""
    return dataset.replace("-", "_")


def visible_columns(policy: Policy, dataset: str) -> dict[str, pa.DataType]:
    """The stored columns an analyst sees, as the policy's contracts for this dataset define them, in policy order.
    Identifier pseudonyms are not among them: the person key replaces them."""
    columns: dict[str, pa.DataType] = {}
    for partner in policy.partners.values():
        found = partner.datasets.get(dataset)
        if found is None:
            continue
        schema = curated.schema_for(found.contract)
        for column in found.contract.columns:
            if column.output_name and column.role != "identifier":
                columns.setdefault(column.output_name, schema.field(column.output_name).type)
    return columns


def datasets_of(policy: Policy) -> list[str]:
    return sorted({name for partner in policy.partners.values() for name in partner.datasets})


@dataclass(frozen=True)
class Source:
    """The curated files of one dataset: what DuckDB reads, and the version (names and ETags) they make."""

    paths: list[str]
    data_version: str


class DatasetAccess:
    """The analyst's read path. `actor` is who reads (their object id): every open is audited under it."""

    def __init__(self, policy: Policy, storage: Storage, index: PersonIndex, actor: str,
                 cache_dir: Path | None = None, azure_account: str | None = None) -> None:
        self.policy, self.storage, self.index, self.actor = policy, storage, index, actor
        self.cache_dir = cache_dir or Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "fdp-analysis")
        self.azure_account = azure_account
        """Set in Azure (the platform account's name): DuckDB reads az:// itself; None downloads to the cache."""
        self.audit = AuditLog(storage.table(AUDIT))
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._versions: dict[str, str] = {}

    # The views ----------------------------------------------------------------------------------------------

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per dataset (built once; each view is audited when first opened)."""
        if self._connection is None:
            self._connection = self._build()
        return self._connection

    def open_dataset(self, name: str) -> duckdb.DuckDBPyRelation:
        """One dataset as a DuckDB relation: person_key, partner and its stored columns."""
        self._check(name)
        relation = self.connect().table(view_name(name))
        self._audit_read(name, relation)
        return relation

    def dataframe(self, name: str) -> pd.DataFrame:
        """One dataset as a pandas DataFrame (missing values are NaN, NaT or None, as pandas reads them)."""
        return self.open_dataset(name).df()

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """A query over the dataset views; each dataset the query names is audited as read."""
        connection = self.connect()
        relation = connection.sql(query)
        words = set(re.findall(r"\w+", query))  # a view's name as a whole word (not sessions_attended)
        for dataset in datasets_of(self.policy):
            if view_name(dataset) in words:
                self._audit_read(dataset, connection.table(view_name(dataset)))
        return relation

    def _check(self, name: str) -> None:
        if name not in datasets_of(self.policy):
            raise Problem(404, "Not Found", "No dataset of that name is in the programme policy.",
                          datasets=datasets_of(self.policy))

    def _build(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        self.index.ensure_linked()
        connection = duckdb.connect()
        if self.azure_account:
            connection.execute("INSTALL azure; LOAD azure;")
            account = _literal(self.azure_account)  # the platform account's name, from the app settings
            connection.execute("CREATE SECRET analysis "
                               f"(TYPE azure, PROVIDER credential_chain, ACCOUNT_NAME {account})")
        connection.register(PERSONS_VIEW, self._persons())
        for dataset in datasets_of(self.policy):
            source = self._source(dataset)
            self._versions[dataset] = source.data_version
            connection.execute(self._view_sql(connection, dataset, source))
        return connection

    def _persons(self) -> pa.Table:
        """record -> person key for every indexed row, less the people analysts must not see."""
        excluded = excluded_people(self.storage, self.index)
        pairs = [(record, person) for record, person in self.index.person_map().items() if person not in excluded]
        return pa.table({"record": [r for r, _ in pairs], PERSON_KEY: [p for _, p in pairs]},
                        schema=pa.schema([("record", pa.string()), (PERSON_KEY, pa.string())]))

    def _view_sql(self, connection: duckdb.DuckDBPyConnection, dataset: str, source: Source) -> str:
        wanted = visible_columns(self.policy, dataset)
        view = _quote(view_name(dataset))
        if not source.paths:  # nothing uploaded yet: an empty table of the right shape
            columns = ", ".join([f"NULL::VARCHAR AS {PERSON_KEY}", f"NULL::VARCHAR AS {PARTNER}",
                                 *(f"NULL::{_duck_type(kind)} AS {_quote(name)}" for name, kind in wanted.items())])
            return f"CREATE VIEW {view} AS SELECT {columns} WHERE false"
        files = "[" + ", ".join(_literal(path) for path in source.paths) + "]"
        read = f"read_parquet({files}, union_by_name = true, hive_partitioning = true)"
        present = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {read}")  # noqa: S608
                   .fetchall()}
        shown = ", ".join(f"c.{_quote(name)}" for name in wanted if name in present)
        missing = ", ".join(f"NULL::{_duck_type(kind)} AS {_quote(name)}" for name, kind in wanted.items()
                            if name not in present)
        columns = ", ".join(part for part in (f"p.{PERSON_KEY}", f"c.{PARTNER}", shown, missing) if part)
        # Every name is a policy column or a cache path, validated on load and quoted: no caller's text.
        record = f"c.{curated.INGEST_ID} || ':' || CAST(c.{curated.ROW} AS VARCHAR)"
        join = f"JOIN {PERSONS_VIEW} AS p ON p.record = {record}"
        return f"CREATE VIEW {view} AS SELECT {columns} FROM {read} AS c {join}"  # noqa: S608

    # Where the files are ------------------------------------------------------------------------------------

    def _source(self, dataset: str) -> Source:
        blobs = [blob for blob in self.storage.platform_container(CURATED).list_blobs(name_starts_with=f"{dataset}/")
                 if blob.name.endswith(".parquet")]
        version = _version(f"{blob.name}@{blob.etag}" for blob in blobs)
        if self.azure_account:
            return Source([f"az://{CURATED}/{blob.name}" for blob in blobs], version)
        return Source(self._cached(dataset, [(blob.name, str(blob.etag)) for blob in blobs]), version)

    def _cached(self, dataset: str, blobs: list[tuple[str, str]]) -> list[str]:
        """Local copies of these blobs, named by blob path and ETag; copies of older versions are deleted."""
        folder = self.cache_dir / CURATED
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.cache_dir.chmod(0o700)
        wanted: dict[Path, str] = {}
        for name, etag in blobs:
            stem = name.removesuffix(".parquet")
            wanted[folder / f"{stem}.{_version([etag])}.parquet"] = name
        for path, name in wanted.items():
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                partial.write_bytes(self.storage.platform_blob(CURATED, name).download_blob().readall())
                partial.replace(path)
        for stale in (folder / dataset).rglob("*.parquet") if (folder / dataset).exists() else ():
            if stale not in wanted:
                stale.unlink()
        return [str(path) for path in sorted(wanted)]

    # Audit --------------------------------------------------------------------------------------------------

    def _audit_read(self, dataset: str, relation: duckdb.DuckDBPyRelation) -> None:
        rows = relation.aggregate("count(*)").fetchall()
        self.audit.append("analysis.read", {"dataset": dataset, "rows": rows[0][0] if rows else 0,
                                            "data_version": self._versions.get(dataset, "")}, actor=self.actor)


def _version(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_DUCK_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.float64(): "DOUBLE",
               pa.date32(): "DATE", pa.bool_(): "BOOLEAN"}


def _duck_type(kind: pa.DataType) -> str:
    return _DUCK_TYPES.get(kind, "VARCHAR")
