"""Operator commands that need no Functions host.

    python -m shared.cli provision       create the platform's containers and tables (safe to repeat)
    python -m shared.cli verify-audit    walk the audit hash chain end to end; exit 1 if it is broken
    python -m shared.cli check-policy P  validate a programme policy file and summarise it

Settings come from the environment, or with --settings from a file in local.settings.json's format.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from shared.platform.audit import AuditLog
from shared.platform.settings import Settings
from shared.platform.storage import AUDIT, Storage
from shared.policy.loader import PolicyError, load_policy


def verify_audit(storage: Storage) -> int:
    result = AuditLog(storage.table(AUDIT)).verify()
    if result.ok:
        print(f"audit chain intact: {result.entries} entries verified")
        return 0
    print(f"audit chain BROKEN ({len(result.problems)} problems in {result.entries} entries):")
    for problem in result.problems:
        print(f"  - {problem}")
    return 1


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
    check = commands.add_parser("check-policy")
    check.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "check-policy":
        return check_policy(args.path)
    env = None
    if args.settings:
        env = {**os.environ, **json.loads(Path(args.settings).read_text())["Values"]}
    storage = Storage.from_settings(Settings.from_env(env))
    if args.command == "provision":
        storage.provision()
        print("platform containers and tables are in place")
        return 0
    return verify_audit(storage)


if __name__ == "__main__":
    sys.exit(main())
