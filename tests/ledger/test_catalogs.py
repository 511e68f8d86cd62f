"""Rule catalogs: the sample files, line-level errors, import, export and the `jifen rules` CLI.

Parsing tests need no database; import and export run on SQLite and
PostgreSQL through the shared `engine` and fresh programmes (`village`,
`make_village`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from ledger import errors
from ledger.catalogs import (
    SAMPLE_CATALOGS,
    CatalogError,
    export_catalog,
    generate_city_catalog,
    import_catalog,
    load_catalog,
    sample_catalog_path,
)
from ledger.chain import get_entry, head
from ledger.cli import main
from ledger.organisation import create_unit
from ledger.programmes import get_programme
from ledger.rules import RULE_EVENT, parse_rule, rule_versions
from ledger.storage import create_engine
from ledger.verify import verify_chain
from tests.conftest import make_village

COMMUNITY_CATEGORIES = ("会议我能到", "发展我带头", "活动我参加", "优秀我来当")

BAD_PERIOD_YAML = """\
version: 1
rules:
  - code: meeting.assembly
    name: 参加村民大会
    category: 会议
    sign: award
    points: 5
  - code: meeting.night-talk
    name: 参加夜话
    category: 会议
    sign: award
    points: 3
    caps:
      - per: member
        period: day
        max_times: 1
      - per: member
        period: fortnight
        max_times: 2
"""
"""The bad period is on line 18, column 9 (rules[1].caps[1].period)."""

BAD_PERIOD_JSON = """\
{
  "version": 1,
  "rules": [
    {"code": "meeting.assembly", "name": "参加村民大会", "category": "会议",
     "sign": "award", "points": 5},
    {
      "code": "meeting.night-talk",
      "name": "参加夜话",
      "category": "会议",
      "sign": "award",
      "points": 3,
      "caps": [
        {"per": "member", "period": "day", "max_times": 1},
        {"per": "member",
         "period": "fortnight", "max_times": 2}
      ]
    }
  ]
}
"""
"""The bad period is on line 15, column 10."""


def rule_yaml(code: str, extra: str = "", points: int = 5) -> str:
    return (f"  - code: {code}\n    name: 规则 {code}\n    category: 测试\n    sign: award\n"
            f"    points: {points}\n{extra}")


def catalog_yaml(*rules: str) -> str:
    return "version: 1\nrules:\n" + "".join(rules)


def refusal(text: str, **options) -> CatalogError:
    with pytest.raises(CatalogError) as raised:
        load_catalog(text, **options)
    assert raised.value.code == "invalid_catalog"
    return raised.value


# -- the sample catalogs (no database) ---------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_CATALOGS)
def test_every_sample_catalog_loads_and_is_portable(name):
    catalog = load_catalog(sample_catalog_path(name))
    assert catalog.rules
    assert catalog.source.endswith(f"sample_catalogs/{name}.yaml")
    for definition in catalog.rules:
        assert definition["scope"] is None  # so they import into any programme
        assert definition["description"]  # the English gloss of the Chinese name


def test_sample_catalog_path_accepts_the_suffix_and_refuses_unknown_names():
    assert sample_catalog_path("village-rules.yaml") == sample_catalog_path("village-rules")
    with pytest.raises(ValueError, match="no sample catalog 'nowhere'"):
        sample_catalog_path("nowhere")


def test_the_community_catalog_has_four_categories_of_six_items():
    catalog = load_catalog(sample_catalog_path("community-24"))
    assert len(catalog.rules) == 24
    for category in COMMUNITY_CATEGORIES:
        assert sum(rule["category"] == category for rule in catalog.rules) == 6, category
    assert {rule["approval"] for rule in catalog.rules} == {"never", "always", "above"}
    assert any(cap["per"] == "household" for rule in catalog.rules for cap in rule["caps"])


def test_village_rules_deduct_only_with_approval_and_evidence():
    catalog = load_catalog(sample_catalog_path("village-rules"))
    deductions = [rule for rule in catalog.rules if rule["sign"] == "deduction"]
    codes = {rule["code"] for rule in deductions}
    assert {"village.banquet-beyond-three", "village.gift-over-200", "village.garbage-unsorted",
            "village.clutter"} <= codes
    assert all(rule["approval"] == "always" and rule["evidence_required"]
               for rule in deductions)
    courtyard = next(rule for rule in catalog.rules if rule["code"] == "village.tidy-courtyard")
    assert courtyard["caps"] == [
        {"per": "household", "period": "month", "max_points": None, "max_times": 1}
    ]
    assert courtyard["in_force_from"] == "2025-01-01"  # a YAML date, accepted


def test_volunteer_minutes_round_down_as_documented():
    catalog = load_catalog(sample_catalog_path("volunteer-hours"))
    general = parse_rule(next(rule for rule in catalog.rules
                              if rule["code"] == "volunteer.general"))
    assert [general.points_for(minutes) for minutes in (12, 59, 60, 71, 72, 480)] == [
        1, 4, 5, 5, 6, 40]
    assert general.per_unit.max_quantity == 480


def test_hazard_reports_need_evidence_and_have_a_cooldown():
    catalog = load_catalog(sample_catalog_path("hazard-reports"))
    awards = [rule for rule in catalog.rules if rule["sign"] == "award"]
    assert all(rule["evidence_required"] for rule in awards)
    assert all(rule["cooldown_minutes"] > 0 for rule in awards
               if rule["code"] != "hazard.fraud-lead")


def test_the_committed_city_catalog_is_the_generators_output():
    committed = sample_catalog_path("city-191").read_text(encoding="utf-8")
    assert committed == generate_city_catalog(), (
        "regenerate: python -m ledger.catalogs generate-city --out "
        "ledger/sample_catalogs/city-191.yaml"
    )
    catalog = load_catalog(committed)
    assert 191 <= len(catalog.rules) <= 200
    assert len({rule["category"] for rule in catalog.rules}) == 15
    assert {rule["sign"] for rule in catalog.rules} == {"award", "deduction"}
    assert any(rule["per_unit"] for rule in catalog.rules)


def test_a_smaller_city_catalog_still_has_every_category():
    catalog = load_catalog(generate_city_catalog(30))
    assert len(catalog.rules) == 30
    assert len({rule["category"] for rule in catalog.rules}) == 15
    assert generate_city_catalog(30) == generate_city_catalog(30)
    with pytest.raises(ValueError, match="from 1 to"):
        generate_city_catalog(10_000)


def test_the_generator_command_writes_the_file(tmp_path):
    out = tmp_path / "city.yaml"
    completed = subprocess.run(
        [sys.executable, "-m", "ledger.catalogs", "generate-city", "--items", "40", "--out",
         str(out)],
        capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"wrote 40 rules to {out}\n"
    assert out.read_text(encoding="utf-8") == generate_city_catalog(40)


# -- line-level errors (no database) -----------------------------------------------------


def test_a_bad_field_in_yaml_names_its_line():
    error = refusal(BAD_PERIOD_YAML, name="meetings.yaml")
    assert error.message == (
        "meetings.yaml:18: rules[1].caps[1].period must be one of day, week, month, year, "
        "lifetime, not 'fortnight'"
    )
    assert (error.details["line"], error.details["column"]) == (18, 9)
    assert error.details["path"] == "rules[1].caps[1].period"


def test_a_bad_field_in_json_names_its_line():
    error = refusal(BAD_PERIOD_JSON, name="meetings.json")
    assert error.message.startswith("meetings.json:15: rules[1].caps[1].period must be one of")
    assert (error.details["line"], error.details["column"]) == (15, 10)


def test_a_file_is_named_by_its_path_and_its_suffix_picks_the_format(tmp_path):
    as_json = tmp_path / "meetings.json"
    as_json.write_text(BAD_PERIOD_JSON, encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"^{as_json}:15: rules\[1\]"):
        load_catalog(as_json)
    as_yaml = tmp_path / "meetings.yml"
    as_yaml.write_text("\ufeff" + BAD_PERIOD_YAML, encoding="utf-8")  # a BOM is tolerated
    with pytest.raises(CatalogError, match=rf"^{as_yaml}:18: rules\[1\]"):
        load_catalog(as_yaml)


def test_a_missing_field_names_the_line_of_its_rule():
    text = catalog_yaml(rule_yaml("a"), "  - code: b\n    category: 测试\n    sign: award\n"
                                        "    points: 1\n")
    error = refusal(text, name="c.yaml")
    assert error.message == "c.yaml:8: rules[1].name is required text"


def test_an_unknown_rule_field_is_refused_at_its_line():
    error = refusal(catalog_yaml(rule_yaml("a"), rule_yaml("b", "    pionts: 3\n")),
                    name="c.yaml")
    assert error.message.startswith("c.yaml:13: rules[1].pionts is not a rule field")


def test_a_duplicate_code_names_both_lines():
    error = refusal(catalog_yaml(rule_yaml("a"), rule_yaml("b"), rule_yaml("a")), name="c.yaml")
    assert error.message == (
        "c.yaml:13: rules[2].code 'a' repeats rules[0] (c.yaml:3); a code names one rule"
    )


def test_an_unknown_top_level_field_is_refused():
    error = refusal("version: 1\nprogramme: xingfu\nrule: []\n", name="c.yaml")
    assert error.message == ("c.yaml:3: 'rule' is not a catalog field "
                             "(fields: version, programme, rules)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: []\n", "c.yaml:1: version is required (1)"),
        ("version: 2\nrules: []\n", "c.yaml:1: version must be 1, not 2"),
        ("version: 1\nrules: {}\n", "c.yaml:2: rules is required: a list of rule definitions"),
        ("version: 1\nprogramme: Xing Fu\nrules: []\n",
         "c.yaml:2: programme must be a programme code, not 'Xing Fu'"),
        ("- version: 1\n",
         "c.yaml:1: a catalog is a mapping with version and rules (see docs/RULES.md)"),
        ("", "c.yaml:1: the file is empty"),
    ],
)
def test_the_catalog_header_is_checked(text, expected):
    assert refusal(text, name="c.yaml").message == expected


def test_a_yaml_syntax_error_names_its_line_and_column():
    text = catalog_yaml(rule_yaml("a"), "  - code: b\n   name: misaligned\n")
    error = refusal(text, name="c.yaml")
    assert error.message.startswith("c.yaml:9: invalid YAML at column 4: ")
    assert error.details["line"] == 9


def test_a_json_syntax_error_names_its_line_and_column():
    error = refusal('{\n  "version": 1,\n  "rules": [,]\n}\n', name="c.json")
    assert error.message == "c.json:3: invalid JSON at column 13: Expecting value"


def test_yaml_is_read_with_the_safe_loader_only():
    error = refusal("version: 1\nrules: !!python/object/apply:os.system ['true']\n",
                    name="c.yaml")
    assert error.message.startswith("c.yaml:2: invalid YAML at column 8: could not determine a "
                                    "constructor for the tag")


def test_a_key_given_twice_is_refused_not_silently_overwritten():
    yaml_error = refusal(catalog_yaml(rule_yaml("a", "    points: 50\n")), name="c.yaml")
    assert yaml_error.message == "c.yaml:8: rules[0].points is given twice (first on line 7)"
    json_error = refusal('{"version": 1,\n "rules": [],\n "rules": []}', name="c.json")
    assert json_error.message == "c.json:3: rules is given twice (first on line 2)"


def test_keys_must_be_text():
    error = refusal(catalog_yaml(rule_yaml("a", "    yes: true\n")), name="c.yaml")
    assert error.message == "c.yaml:8: keys must be text; quote 'yes'"


def test_dates_are_accepted_and_date_times_are_not():
    loaded = load_catalog(catalog_yaml(rule_yaml("a", "    in_force_from: 2026-01-01\n"
                                                      "    in_force_until: '2027-01-01'\n")))
    assert (loaded.rules[0]["in_force_from"], loaded.rules[0]["in_force_until"]) == (
        "2026-01-01", "2027-01-01")
    error = refusal(catalog_yaml(rule_yaml("a", "    in_force_from: 2026-01-01 08:00:00\n")),
                    name="c.yaml")
    assert error.message.startswith("c.yaml:8: rules[0].in_force_from must be a date")


def test_yaml_anchors_and_merge_keys_work_and_errors_still_find_a_line():
    text = ("version: 1\nrules:\n"
            "  - &meeting {code: a, name: A, category: 会议, sign: award, points: 3}\n"
            "  - <<: *meeting\n    code: b\n    caps: [{period: decade, max_times: 1}]\n")
    error = refusal(text, name="c.yaml")
    assert error.message.startswith("c.yaml:6: rules[1].caps[0].period must be one of")
    good = load_catalog(text.replace("decade", "day"))
    assert [rule["code"] for rule in good.rules] == ["a", "b"]
    assert good.rules[1]["points"] == 3


# -- import and export (SQLite and PostgreSQL) -------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_CATALOGS)
def test_every_sample_catalog_imports_cleanly_again_adds_nothing_and_round_trips(engine, name):
    village = make_village(engine)
    catalog = load_catalog(sample_catalog_path(name))
    codes = [rule["code"] for rule in catalog.rules]

    first = import_catalog(engine, village.code, catalog, actor="system:test")
    assert first.created == [(code, 1) for code in codes]
    assert first.unchanged == []
    assert head(engine, village.code).size == len(codes)  # one admin entry per rule

    again = import_catalog(engine, village.code, catalog, actor="system:test")
    assert again.created == []
    assert again.unchanged == codes
    assert head(engine, village.code).size == len(codes)
    assert verify_chain(engine, village.code).ok

    exported = export_catalog(engine, village.code)
    copy = make_village(engine)
    import_catalog(engine, copy.code, load_catalog(exported), actor="system:test")
    assert export_catalog(engine, copy.code) == exported


def test_a_changed_rule_gains_a_version_and_an_admin_entry(village):
    engine = village.engine
    original = catalog_yaml(rule_yaml("a"), rule_yaml("b"))
    import_catalog(engine, village.code, load_catalog(original), actor="system:test")
    changed = catalog_yaml(rule_yaml("a"), rule_yaml("b", points=8))

    report = import_catalog(engine, village.code, load_catalog(changed), actor="admin:wang")
    assert report.created == [("b", 2)]
    assert report.unchanged == ["a"]
    entry = get_entry(engine, village.code, head(engine, village.code).size - 1)  # seq from 0
    assert entry.kind == "admin" and entry.actor == "admin:wang"
    assert entry.metadata["event"] == RULE_EVENT and entry.metadata["version"] == 2
    assert entry.metadata["rule"]["points"] == 8
    programme_id = get_programme(engine, village.code).id
    assert [rule.points for rule in rule_versions(engine, programme_id, "b")] == [5, 8]


def test_a_scope_naming_a_missing_unit_names_the_rule_and_writes_nothing(village):
    engine = village.engine
    text = catalog_yaml(rule_yaml("a", "    scope: village\n"),
                        rule_yaml("b", "    scope: east-grid\n"))
    catalog = load_catalog(text, name="scoped.yaml")
    with pytest.raises(errors.UnknownUnit) as raised:
        import_catalog(engine, village.code, catalog, actor="system:test")
    assert raised.value.message == (
        f"scoped.yaml:14: rule 'b' is scoped to unit 'east-grid', which programme "
        f"{village.code!r} does not have; create the unit or change the scope"
    )
    assert head(engine, village.code).size == 0  # not even rule a

    create_unit(engine, village.code, "east-grid", "东片网格", "grid", parent="village")
    report = import_catalog(engine, village.code, catalog, actor="system:test")
    assert report.created == [("a", 1), ("b", 1)]


@pytest.mark.parametrize("format_name", ["yaml", "json"])
def test_export_import_export_gives_the_same_text(engine, format_name):
    source = make_village(engine)
    for name in ("community-24", "village-rules", "volunteer-hours", "hazard-reports"):
        import_catalog(engine, source.code, load_catalog(sample_catalog_path(name)),
                       actor="system:test")
    create_unit(engine, source.code, "east-grid", "东片网格", "grid", parent="village")
    scoped = catalog_yaml(rule_yaml("grid.cleanup", "    scope: east-grid\n"
                                                    "    in_force_until: 2027-01-01\n"))
    import_catalog(engine, source.code, load_catalog(scoped), actor="system:test")

    exported = export_catalog(engine, source.code, format_name)
    copy = make_village(engine)
    create_unit(engine, copy.code, "east-grid", "东片网格", "grid", parent="village")
    report = import_catalog(engine, copy.code, load_catalog(exported, format=format_name),
                            actor="system:test")
    assert len(report.created) == 24 + 14 + 6 + 6 + 1
    assert export_catalog(engine, copy.code, format_name) == exported

    document = json.loads(exported) if format_name == "json" else yaml.safe_load(exported)
    assert len(document["rules"]) == 51
    if format_name == "json":
        assert "参加居民代表大会" in exported  # ensure_ascii=False: Chinese stays readable
        assert list(document["rules"][0]) == [
            "code", "name", "category", "description", "sign", "points", "per_unit", "scope",
            "caps", "cooldown_minutes", "evidence_required", "approval",
            "approval_above_points", "roles", "in_force_from", "in_force_until",
        ]
    else:
        assert "in_force_until: 2027-01-01\n" in exported  # a plain YAML date
        assert "approval_above_points: null" in exported  # every key, defaults too


# -- the command line --------------------------------------------------------------------


def jifen(database_url: str, *arguments: str):
    return CliRunner().invoke(main, list(arguments), env={"JIFEN_DATABASE_URL": database_url})


def test_rules_import_list_and_export_from_the_command_line(database_url, village, tmp_path):
    catalog = sample_catalog_path("hazard-reports")
    imported = jifen(database_url, "rules", "import", str(catalog), "--programme", village.code)
    assert imported.exit_code == 0, imported.output + imported.stderr
    assert "hazard.major: version 1" in imported.output
    assert f"into {village.code}: 6 rules new or changed, 0 unchanged" in imported.output

    again = jifen(database_url, "rules", "import", str(catalog), "-p", village.code,
                  "--actor", "admin:wang")
    assert again.exit_code == 0
    assert "0 rules new or changed, 6 unchanged" in again.output
    assert head(village.engine, village.code).size == 6

    listed = jifen(database_url, "rules", "list", "-p", village.code)
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split()[:4] == ["code", "version", "points", "approval"]
    assert len(lines) == 7
    assert any(line.split()[:4] == ["hazard.false-report", "v1", "-5", "always"]
               for line in lines)

    shown = jifen(database_url, "rules", "export", "-p", village.code)
    assert shown.exit_code == 0
    assert shown.output == export_catalog(village.engine, village.code, "yaml")

    out = tmp_path / "hazards.json"
    written = jifen(database_url, "rules", "export", "-p", village.code, "--out", str(out))
    assert written.exit_code == 0
    assert out.read_text(encoding="utf-8") == export_catalog(village.engine, village.code,
                                                              "json")
    as_yaml = tmp_path / "hazards.txt"
    jifen(database_url, "rules", "export", "-p", village.code, "--format", "yaml",
          "--out", str(as_yaml))
    assert as_yaml.read_text(encoding="utf-8") == shown.output


def test_the_catalogs_programme_key_is_used_and_the_option_wins(database_url, engine, tmp_path):
    named, other = make_village(engine), make_village(engine)
    file = tmp_path / "rules.yaml"
    file.write_text(f"programme: {named.code}\n" + catalog_yaml(rule_yaml("a")),
                    encoding="utf-8")
    assert jifen(database_url, "rules", "import", str(file)).exit_code == 0
    assert head(engine, named.code).size == 1
    assert jifen(database_url, "rules", "import", str(file), "-p", other.code).exit_code == 0
    assert head(engine, other.code).size == 1
    assert head(engine, named.code).size == 1


def test_a_bad_catalog_file_exits_1_naming_its_line(database_url, village, tmp_path):
    file = tmp_path / "meetings.yaml"
    file.write_text(BAD_PERIOD_YAML, encoding="utf-8")
    refused = jifen(database_url, "rules", "import", str(file), "-p", village.code)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: invalid_catalog: {file}:18: rules[1].caps[1].period must be one of day, "
        "week, month, year, lifetime, not 'fortnight'\n"
    )
    assert head(village.engine, village.code).size == 0


def test_import_without_a_programme_and_export_of_an_ambiguous_database_are_refused(
    database_url, village, tmp_path
):
    make_village(village.engine)  # so the database holds at least two programmes
    file = tmp_path / "rules.yaml"
    file.write_text(catalog_yaml(rule_yaml("a")), encoding="utf-8")
    refused = jifen(database_url, "rules", "import", str(file))
    assert refused.exit_code == 1
    assert refused.stderr == (f"error: unknown_programme: {file} names no programme: give "
                              "--programme, or `programme:` in the file\n")
    ambiguous = jifen(database_url, "rules", "export")  # the shared database holds many
    assert ambiguous.exit_code == 1
    assert "error: unknown_programme: give --programme: the database holds" in ambiguous.stderr


def test_export_defaults_to_the_only_programme(backend, databases):
    url = databases.new_url(backend)
    assert jifen(url, "db", "upgrade").exit_code == 0
    engine = create_engine(url)
    try:
        village = make_village(engine)
        import_catalog(engine, village.code, load_catalog(sample_catalog_path("volunteer-hours")),
                       actor="system:test")
        exported = jifen(url, "rules", "export", "--format", "json")
        assert exported.exit_code == 0
        assert exported.output == export_catalog(engine, village.code, "json")
    finally:
        engine.dispose()
