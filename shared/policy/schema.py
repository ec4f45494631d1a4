"""The JSON Schema of a programme policy, generated from its pydantic models and published beside the policies.

`python -m shared.policy.schema` writes `policies/policy.schema.json`; `--check` exits 1 when the committed file is
not what the models generate. Each shipped policy's first line, `# yaml-language-server: $schema=policy.schema.json`,
has an editor with the YAML language server check the policy as it is typed. The schema covers each key's type,
allowed values and ranges; the rules that span keys (a report's columns exist) are the loader's
(`python -m shared.cli check-policy`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.policy.models import PolicyDocument

PUBLISHED = Path(__file__).resolve().parents[2] / "policies" / "policy.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def generate() -> dict[str, Any]:
    """The policy's JSON Schema: pydantic's, with mappings of operator-chosen names (partners, datasets, columns)
    closed to names that match their pattern, as the loader is."""
    schema = PolicyDocument.model_json_schema()
    _close_named_mappings(schema)
    return {"$schema": DIALECT, **schema}


def _close_named_mappings(node: Any) -> None:
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_named_mappings(value)
    elif isinstance(node, list):
        for value in node:
            _close_named_mappings(value)


def text() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the published schema is not current")
    parser.add_argument("--out", type=Path, default=PUBLISHED)
    args = parser.parse_args(argv)
    if args.check:
        current = args.out.exists() and args.out.read_text() == text()
        print(f"{args.out}: {'current' if current else 'out of date: run python -m shared.policy.schema'}")
        return 0 if current else 1
    args.out.write_text(text())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
