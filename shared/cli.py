"""Operator commands that need no Functions host.

    python -m shared.cli provision       create the platform's containers and tables (safe to repeat)
    python -m shared.cli verify-audit    walk the audit hash chain end to end and check it against every signed
                                         checkpoint; exit 1 if anything is missing or changed
    python -m shared.cli checkpoint      sign a checkpoint of the audit chain now (the app does it hourly)
    python -m shared.cli check-policy P  validate a programme policy file and summarise it

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
    args = parser.parse_args(argv)
    if args.command == "check-policy":
        return check_policy(args.path)
    env = None
    if args.settings:
        env = {**os.environ, **json.loads(Path(args.settings).read_text())["Values"]}
    settings = Settings.from_env(env)
    storage = Storage.from_settings(settings)
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
