"""Programme policies load and validate with errors that name the file, the key path, what is wrong and what
is allowed; every seed programme has a faithful policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
import yaml

from shared import cli
from shared.identity.matchkeys import FIELDS as MATCH_FIELDS
from shared.identity.pseudonymise import BASE_TYPES
from shared.policy import contracts, models, schema
from shared.policy.disclosure_rules import RULES
from shared.policy.loader import PolicyError, load_policy
from shared.policy.retention_rules import ANCHORS
from tests.conftest import POLICIES

SEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"


def test_one_policy_per_seed_programme():
    assert set(POLICIES) == {"thrive-at-five", "leap", "thriving-families", "achieving-for-children"}
    for path in POLICIES.values():
        text = path.read_text()
        assert "../shared/seeds/" in text, f"{path.name} cites its notice"
        assert text.count('"') >= 10, f"{path.name} quotes the notice's sentences"


@pytest.mark.skipif(not SEEDS.exists(), reason="the seed notices sit beside the project")
def test_quotations_are_the_notices_own_words():
    notices = " ".join(" ".join(p.read_text().split()) for p in SEEDS.glob("*.txt")).replace("’", "'")
    for path in POLICIES.values():
        for block in comment_blocks(path.read_text()):
            for fragment in block.split('"')[1::2]:
                for piece in fragment.split("..."):
                    if len(piece.strip()) > 25:
                        assert " ".join(piece.split()) in notices, f"{path.name}: not in the notice: {piece}"


def comment_blocks(text: str) -> list[str]:
    """Runs of consecutive comment lines, joined: a quotation may wrap over several lines."""
    blocks, current = [], []
    for line in text.splitlines():
        if "#" in line:
            current.append(line.partition("#")[2].strip())
        elif current:
            blocks.append(" ".join(current))
            current = []
    return blocks + ([" ".join(current)] if current else [])


def test_promises_are_encoded():
    thrive, leap = load_policy(POLICIES["thrive-at-five"]), load_policy(POLICIES["leap"])
    assert thrive.programme.residency == "UK" and thrive.programme.region in ("uksouth", "ukwest")
    assert leap.programme.residency == "EU"
    school = thrive.partners["school-north"].datasets["early-years"]
    assert school.basis == "consent" and school.contract.unexpected_columns == "reject_file"
    assert not [c for c in school.contract.columns if c.role == "direct"], "schools send no names at all"
    assert (school.retention.anchor, school.retention.offset.years) == ("received", 12)
    assert leap.partners["nhs-community-health"].datasets["health-visits"].basis == "legitimate_interest"
    assert leap.partners["family-support-charity"].datasets["sessions"].basis == "consent"
    tf = load_policy(POLICIES["thriving-families"])
    extract = tf.extracts["national-evaluation"]
    assert extract.recipient == "iff-research" and extract.k == 5 and extract.expires


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


BROKEN = """
programme:
  name: Test
  controller: Test
  data_residency: UK
  region: westeurope
partners:
  Bad_Partner:
    name: x
    kind: school
    datasets: {}
  good:
    name: Good
    kind: shop
    datasets:
      visits:
        basis: consent
        retention: {anchor: yesterday}
        columns:
          ref: {role: identifer, type: partner_ref}
          score: {role: attribute, type: integer}
          colour: {role: attribute, type: string, values: [red], extra: 1}
"""


def test_errors_name_file_path_problem_and_allowed(tmp_path):
    path = write(tmp_path, BROKEN)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    issues = {issue.path: issue for issue in caught.value.issues}
    assert all(issue.file == str(path) for issue in caught.value.issues)
    assert "uksouth" in issues["programme.region"].allowed
    assert "partners.Bad_Partner" in issues
    assert "school" in issues["partners.good.kind"].allowed
    assert "identifier" in issues["partners.good.datasets.visits.columns.ref.role"].allowed
    assert "min and max" in issues["partners.good.datasets.visits.columns.score"].problem
    assert issues["partners.good.datasets.visits.columns.colour.extra"].problem == "unknown key"
    assert "received" in issues["partners.good.datasets.visits.retention.anchor"].allowed
    assert "consent" in issues["partners.good.datasets.visits.columns"].problem
    assert str(path) in str(caught.value) and "partners.good.kind" in str(caught.value)


def test_yaml_syntax_errors_name_the_line(tmp_path):
    with pytest.raises(PolicyError, match=r"line \d+, column \d+: not valid YAML"):
        load_policy(write(tmp_path, "programme:\n  name: [unclosed\n"))


def test_check_policy_command(capsys, tmp_path):
    assert cli.main(["check-policy", str(POLICIES["leap"])]) == 0
    assert "drop-family-support-charity/sessions/" in capsys.readouterr().out
    assert cli.main(["check-policy", str(write(tmp_path, BROKEN))]) == 1


def test_extract_privacy_keys_are_checked(tmp_path):
    """sensitive must name an agreed column that is not a quasi-identifier; l needs sensitive and may not exceed
    k; the suppression budget is a percentage up to 10."""
    text = POLICIES["thriving-families"].read_text()
    assert "sensitive: [social_care_status]" in text and "max_suppressed_percent: 2" in text
    broken = (text.replace("sensitive: [social_care_status]", "sensitive: [gender, religion]")
              .replace("l: 2", "l: 6").replace("max_suppressed_percent: 2", "max_suppressed_percent: 50"))
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, broken))
    issues = {(issue.path, issue.problem): issue for issue in caught.value.issues}
    path = "extracts[0]"
    assert issues[(f"{path}.sensitive", "'gender' is not one of the extract's columns that is not a "
                                        "quasi-identifier")].allowed == "goals_achieved, goals_set, social_care_status"
    assert (f"{path}.sensitive", "'religion' is not one of the extract's columns that is not a quasi-identifier") \
        in issues
    assert (f"{path}.l", "must be a whole number from 2 to 5") in issues
    assert (f"{path}.max_suppressed_percent", "must be a percentage from 0 to 10") in issues
    without = text.replace("    sensitive: [social_care_status]\n", "")
    with pytest.raises(PolicyError, match=r"extracts\[0\]\.l: l-diversity needs the sensitive attributes"):
        load_policy(write(tmp_path, without))
    extract = load_policy(POLICIES["thriving-families"]).extracts["national-evaluation"]
    assert (extract.sensitive, extract.l, extract.max_suppressed_percent) == (("social_care_status",), 2, 2.0)
    assert "family support services" in extract.purpose


def test_reports_on_special_category_data_get_the_stricter_threshold_and_dominance_is_configurable(tmp_path):
    families = load_policy(POLICIES["thriving-families"])
    assert families.partners["thriving-families-team"].datasets["family-support"].special_category
    assert families.reports["families-supported"].rule.smallest_published == 20
    assert load_policy(POLICIES["leap"]).reports["sessions-by-service"].rule.smallest_published == 10
    text = POLICIES["leap"].read_text().replace("rule: {type: threshold, threshold: 10}",
                                                "rule: {type: ons-10-5, threshold: 10, dominance: {k: 80, q: 1}}", 1)
    path = tmp_path / "leap.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "reports[0].rule.threshold: a ons-10-5 rule has a fixed threshold" in message
    assert "reports[0].rule.dominance.q: unknown key" in message

# The published schema ---------------------------------------------------------------------------------------


def test_the_published_schema_is_the_one_the_models_generate():
    published = Path(schema.PUBLISHED)
    assert published.parent == Path(next(iter(POLICIES.values()))).parent, "published beside the policies"
    assert published.read_text() == schema.text(), "run python -m shared.policy.schema"
    assert schema.main(["--check"]) == 0


def as_json(document: Any) -> Any:
    """A YAML document as an editor's YAML language server hands it to the schema: dates as ISO text."""
    return json.loads(json.dumps(document, default=lambda value: value.isoformat()))


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(schema.PUBLISHED.read_text()),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [error.json_path for error in validator.iter_errors(as_json(document))]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_shipped_policy_validates_against_the_published_schema(name):
    text = POLICIES[name].read_text()
    assert text.startswith("# yaml-language-server: $schema=policy.schema.json\n"), "an editor finds the schema"
    assert schema_errors(yaml.safe_load(text)) == []


def test_the_schema_catches_what_an_operator_mistypes():
    jsonschema.Draft202012Validator.check_schema(json.loads(schema.PUBLISHED.read_text()))
    document = yaml.safe_load(POLICIES["leap"].read_text())
    charity = document["partners"]["family-support-charity"]
    charity["kind"] = "shop"
    sessions = charity["datasets"]["sessions"]
    sessions["columns"]["family_ref"]["role"] = "identifer"
    sessions["columns"]["Session Date"] = sessions["columns"].pop("session_date")
    sessions["retention"]["yeers"] = 25
    document["programme"]["programme_end"] = "2025-13-01"
    found = schema_errors(document)
    for path in ("$.partners['family-support-charity'].kind",
                 "$.partners['family-support-charity'].datasets.sessions.columns.family_ref",
                 "$.partners['family-support-charity'].datasets.sessions.columns",
                 "$.partners['family-support-charity'].datasets.sessions.retention",
                 "$.programme.programme_end"):
        assert path in found


def test_the_models_allow_what_the_platform_knows():
    """The models spell each vocabulary out for the schema; the platform's own tuples are what the code obeys."""
    assert get_args(models.IdType) == BASE_TYPES
    assert get_args(models.Generalisation) == contracts.GENERALISATIONS
    assert get_args(models.AttributeType) == contracts.ATTRIBUTE_TYPES
    assert get_args(models.Anchor) == ANCHORS
    assert get_args(models.DisclosureRule) == RULES
    assert set(get_args(models.Region)) == set(models.UK_REGIONS + models.EU_REGIONS)
    roles = {get_args(column.model_fields["role"].annotation)[0] for column in get_args(get_args(
        models.ColumnSpec)[0])}
    assert roles == set(contracts.ROLES)
    matches = get_args(models.DirectColumn.model_fields["match"].annotation)[0]
    quasi = get_args(models.QuasiColumn.model_fields["match"].annotation)[0]
    assert set(get_args(matches) + get_args(quasi)) == set(MATCH_FIELDS)


# Every problem at once ----------------------------------------------------------------------------------------

EVERYWHERE = BROKEN + """
      more:
        basis: public_task
        retention: {anchor: column}
        row_key: [ref, ref]
        columns:
          ref: {role: identifier, type: partner_ref}
          seen: {role: attribute, type: date, required: false}
          born: {role: quasi, generalise: age_in_months, at: when}
reports:
  - {name: r, audience: a, datasets: [more, nowhere], dimensions: [zzz], measure: "sum:ref"}
  - {name: r2, audience: a, rule: {threshold: 1}, datasets: [more], dimensions: [seen]}
extracts:
  - {name: e, recipient: x, datasets: [more], columns: [ref_pseudonym, y], quasi_identifiers: [k], k: 2,
     expires: 2030-01-01}
"""


def test_a_broken_policy_gets_every_problem_at_once(tmp_path):
    """Problems of shape, within a dataset and across the policy, in one report: a broken dataset does not hide
    a report's problems, nor a broken column its dataset's."""
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, EVERYWHERE))
    found = {issue.path for issue in caught.value.issues}
    more = "partners.good.datasets.more"
    assert found >= {
        "programme.region", "partners.Bad_Partner", "partners.good.kind",
        "partners.good.datasets.visits.retention.anchor", "partners.good.datasets.visits.columns.ref.role",
        "partners.good.datasets.visits.columns", f"{more}.columns.born.at", f"{more}.row_key",
        f"{more}.retention.column", "reports[0].datasets[1]", "reports[0].dimensions[0]", "reports[0].measure",
        "reports[1].rule.threshold", "extracts[0].columns[1]", "extracts[0].quasi_identifiers[0]"}
    assert all(issue.problem and issue.allowed for issue in caught.value.issues), "each says what is allowed"


def test_problems_never_quote_the_value_found(tmp_path):
    """A partner's data pasted into the wrong place (an NHS number, a name) is not repeated in the error."""
    secret, name = "9434765919", "Amelia Fairweather"
    text = (BROKEN.replace("kind: shop", f"kind: {secret}").replace("anchor: yesterday", f"anchor: {secret}")
            .replace("role: identifer", f"role: '{name}'").replace("type: integer", f"type: '{name}'")
            .replace("region: westeurope", f"region: '{name}'") + f"  x-note: {secret}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    assert len(caught.value.issues) >= 5
    assert secret not in str(caught.value) and name not in str(caught.value)
