"""Operator commands that need no Functions host.

    python -m shared.cli provision       create the platform's containers and tables (safe to repeat)
    python -m shared.cli verify-audit    walk the audit hash chain end to end and check it against every signed
                                         checkpoint; exit 1 if anything is missing or changed
    python -m shared.cli checkpoint      sign a checkpoint of the audit chain now (the app does it hourly)
    python -m shared.cli check-policy P  validate a programme policy file and summarise it
    python -m shared.cli dictionary --write DIR [--check] [POLICY ...]
                                         write (or check) each programme's data dictionary (Markdown and JSON)
    python -m shared.cli dictionary --publish
                                         publish the configured programme's dictionaries beside its curated data
    python -m shared.cli query --as ID SQL
                                         run SQL over the dataset views as analyst ID (audited) and print CSV

Settings come from the environment, or with --settings from a file in local.settings.json's format.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from shared.platform.checkpoints import AuditBrokenError, AuditCheckpoints, AuditKey, audit_key_from_settings
from shared.platform.settings import ConfigurationError, Settings
from shared.platform.storage import Storage
from shared.policy.loader import PolicyError, load_policy


def verify_audit(storage: Storage, key: AuditKey | None = None) -> int:
    """Exit 0 when the chain is intact and matches every checkpoint; the report names entries by number only."""
    result = AuditCheckpoints(storage, key).verify()
    if result.ok:
        anchored = (f"; entries 1 to {result.anchored} match {result.checkpoints} signed checkpoints"
                    if result.checkpoints else "")
        print(f"audit chain intact: {result.entries} entries verified{anchored}")
    else:
        print(f"audit chain BROKEN ({len(result.problems)} problems in {result.entries} entries):")
        for problem in result.problems:
            print(f"  - {problem}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0 if result.ok else 1


def checkpoint(storage: Storage, key: AuditKey | None) -> int:
    try:
        written = AuditCheckpoints(storage, key).write()
    except AuditBrokenError as error:
        print("no checkpoint signed: the audit chain is broken:")
        for problem in error.problems:
            print(f"  - {problem}")
        return 1
    if written.checkpoint is None:
        print("nothing appended since the last checkpoint: none written")
        return 0
    signed = written.checkpoint
    print(f"checkpoint {signed.name}: entries {signed.first} to {signed.count} signed with {signed.key_id}")
    for problem in written.problems:
        print(f"  - signed as found, but: {problem}")
    return 1 if written.problems else 0


def check_policy(path: str) -> int:
    try:
        policy = load_policy(path)
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{policy.programme.name}: valid (version {policy.version}), region {policy.programme.region}")
    for partner in policy.partners.values():
        for dataset in partner.datasets.values():
            columns = len(dataset.contract.columns)
            print(f"  drop-{partner.id}/{dataset.name}/  basis {dataset.basis}, {columns} columns")
    return 0


def write_dictionaries(folder: Path, policies: list[Path], check: bool) -> int:
    """Each programme's dictionary as <folder>/<policy stem>.md and .json; with check, only say which are stale."""
    from shared.publishing.dictionary import programme_json, programme_markdown

    stale = []
    for path in policies:
        policy = load_policy(path)
        source = path.as_posix() if not path.is_absolute() else path.name
        for suffix, text in ((".md", programme_markdown(policy, source)), (".json", programme_json(policy))):
            target = folder / f"{path.stem}{suffix}"
            if target.exists() and target.read_text() == text:
                continue
            stale.append(str(target))
            if not check:
                folder.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    for name in stale:
        print(f"{'out of date' if check else 'written'}: {name}")
    return 1 if check and stale else 0


def query(sql: str, actor: str) -> int:
    """An evaluator's query over the dataset views, printed as CSV (spreadsheet-safe)."""
    from shared.platform.csvsafe import to_csv
    from shared.runtime import dataset_access

    relation = dataset_access(actor).sql(sql)
    print(to_csv(relation.columns, relation.fetchall()), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", metavar="FILE", help="read app settings from a local.settings.json file")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("provision")
    commands.add_parser("verify-audit")
    commands.add_parser("checkpoint")
    check = commands.add_parser("check-policy")
    check.add_argument("path")
    dictionary = commands.add_parser("dictionary")
    dictionary.add_argument("--write", metavar="DIR", type=Path)
    dictionary.add_argument("--check", action="store_true", help="exit 1 if a written dictionary is out of date")
    dictionary.add_argument("--publish", action="store_true")
    dictionary.add_argument("policies", nargs="*", type=Path)
    sql = commands.add_parser("query")
    sql.add_argument("--as", dest="actor", required=True, help="the analyst's object id (audited)")
    sql.add_argument("sql")
    args = parser.parse_args(argv)
    if args.command == "check-policy":
        return check_policy(args.path)
    if args.command == "dictionary" and args.write:
        return write_dictionaries(args.write, args.policies or sorted(Path("policies").glob("*.yaml")), args.check)
    env = None
    if args.settings:
        env = {**os.environ, **json.loads(Path(args.settings).read_text())["Values"]}
    if env is not None:
        os.environ.update(env)  # the runtime reads its settings from the environment
    settings = Settings.from_env(env)
    storage = Storage.from_settings(settings)
    if args.command == "query":
        return query(args.sql, args.actor)
    if args.command == "dictionary":
        from shared.publishing.dictionary import publish

        for name in publish(load_policy(settings.policy_path), storage):
            print(f"published: curated/{name}")
        return 0
    if args.command == "provision":
        storage.provision()
        print("platform containers and tables are in place")
        return 0
    try:
        key = audit_key_from_settings(settings)
        if args.command == "checkpoint":
            return checkpoint(storage, key)
        return verify_audit(storage, key)
    except ConfigurationError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
