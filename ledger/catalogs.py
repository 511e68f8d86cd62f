"""Rule catalogs: a programme's whole rule book as one YAML or JSON file.

Organisers write and review their rules as a file (a village adopts its
村规民约 at an assembly, a city publishes its 191 items), so the file is
the unit of change: `load_catalog` reads and validates one, `import_catalog`
records every rule that is new or changed (each as its own version and admin
entry, through `ledger.rules.set_rule`), `export_catalog` writes the rules
in force back out. docs/RULES.md documents the schema.

A catalog is

    version: 1                 # the catalog format; required
    programme: xingfu-village  # optional; the `jifen rules import --programme` option wins
    rules: [...]               # rule definitions, as in ledger/rules.py

Every mistake is reported as `CatalogError` naming the file and line of the
offending field (`community.yaml:37: rules[3].caps[0].period must be one of
...`): people edit these files by hand, and "somewhere in rule 3" is not
an answer. YAML is read with the safe loader only, so a catalog cannot
construct Python objects.

Importing is repeatable: a rule whose definition is unchanged gains no
version, so importing the same file twice writes nothing. Importing never
removes a rule that the file leaves out; a rule is retired by giving it an
`in_force_until` date.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from json.decoder import scanstring
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine

from ledger import errors
from ledger.organisation import require_unit
from ledger.programmes import CODE_PATTERN, get_programme
from ledger.rules import InvalidRule, current_rules, parse_rule, set_rule
from ledger.storage import read_transaction

CATALOG_FORMAT_VERSION = 1
CATALOG_FIELDS = ("version", "programme", "rules")
FORMATS = ("yaml", "json")
MAX_CATALOG_BYTES = 4 * 1024 * 1024
MAX_CATALOG_RULES = 2_000
SAMPLE_CATALOGS = ("community-24", "village-rules", "volunteer-hours", "hazard-reports",
                   "city-191")
"""The catalogs shipped in ledger/sample_catalogs/, built from shared/DOMAIN.md."""

_YAML_STRING_TAG = "tag:yaml.org,2002:str"
_YAML_MERGE_TAG = "tag:yaml.org,2002:merge"
_JSON_LITERAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
_PARENT_PATH = re.compile(r"^(.+?)(?:\.[^.\[\]]+|\[\d+\])$")


class CatalogError(errors.LedgerError):
    """A catalog file is malformed; the message starts with `file:line:`.

    `details` carries `source`, `line` and `column` (1-based, None when
    unknown) and `path`, the field's path such as `rules[3].caps[0].period`.
    """

    code = "invalid_catalog"


@dataclass(frozen=True)
class Catalog:
    """A validated catalog: rule definitions in file order, as plain JSON.

    `positions` maps each field path (`rules[3].caps[0].period`) to its
    (line, column) in the file, so later errors can name the line too.
    """

    rules: list[dict[str, Any]]
    programme: str | None = None
    source: str = "<catalog>"
    positions: Mapping[str, tuple[int, int]] = field(default_factory=dict, repr=False,
                                                     compare=False)

    def locate(self, path: str) -> tuple[int, int] | None:
        """(line, column) of `path`, or of its nearest ancestor in the file (a missing field)."""
        while True:
            if path in self.positions:
                return self.positions[path]
            parent = _PARENT_PATH.match(path)
            if parent is None:
                return None
            path = parent.group(1)

    def where(self, path: str) -> str:
        """`file:line` of `path`, as errors print it."""
        position = self.locate(path)
        return self.source if position is None else f"{self.source}:{position[0]}"

    def error(self, path: str, message: str) -> CatalogError:
        position = self.locate(path)
        return CatalogError(
            f"{self.where(path)}: {message}",
            source=self.source,
            line=position[0] if position else None,
            column=position[1] if position else None,
            path=path,
        )


@dataclass(frozen=True)
class ImportReport:
    created: list[tuple[str, int]]
    """(code, version) of every rule that gained a version, in file order."""
    unchanged: list[str]
    """Codes whose current version already had the file's definition."""


# -- loading ---------------------------------------------------------------------------


def load_catalog(source: os.PathLike | str, format: str | None = None,
                 name: str = "<catalog>") -> Catalog:
    """Read and validate a catalog, from a file (a path object) or from text (a str).

    `format` is "yaml" or "json"; by default a file's suffix decides
    (`.json`, else YAML) and text that starts with `{` is JSON. `name` names
    text in messages; a file is named by its path. Raises `CatalogError`
    for anything wrong, naming the file and line.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if isinstance(source, os.PathLike):
        path = Path(source)
        name = str(path)
        text = _read_file(path)
        if format is None:
            format = "json" if path.suffix.lower() == ".json" else "yaml"
    else:
        text = source.removeprefix("\ufeff")
        if len(text.encode("utf-8")) > MAX_CATALOG_BYTES:
            raise CatalogError(f"{name}: a catalog may hold at most {MAX_CATALOG_BYTES} bytes",
                               source=name, line=None, column=None, path="")
        if format is None:
            format = "json" if text.lstrip().startswith("{") else "yaml"
    try:
        if format == "json":
            document, positions = _parse_json(text, name)
        else:
            document, positions = _parse_yaml(text, name)
        return _validate(document, Catalog(rules=[], source=name, positions=positions))
    except RecursionError:
        raise CatalogError(f"{name}: the catalog is nested too deeply to be a catalog",
                           source=name, line=None, column=None, path="") from None


def _read_file(path: Path) -> str:
    name = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CATALOG_BYTES + 1)
    except OSError as error:
        raise CatalogError(f"{name}: cannot read the file: {error.strerror}", source=name,
                           line=None, column=None, path="") from error
    if len(raw) > MAX_CATALOG_BYTES:
        raise CatalogError(f"{name}: a catalog may hold at most {MAX_CATALOG_BYTES} bytes",
                           source=name, line=None, column=None, path="")
    try:
        return raw.decode("utf-8-sig")  # tolerate the byte-order mark Windows editors add
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise CatalogError(f"{name}:{line}: the file is not UTF-8 text", source=name,
                           line=line, column=None, path="") from error


def _validate(document: Any, empty: Catalog) -> Catalog:
    if not isinstance(document, dict):
        raise empty.error("", "a catalog is a mapping with version and rules "
                              "(see docs/RULES.md)")
    for key in document:
        if key not in CATALOG_FIELDS:
            raise empty.error(key, f"{key!r} is not a catalog field "
                                   f"(fields: {', '.join(CATALOG_FIELDS)})")
    if "version" not in document:
        raise empty.error("", f"version is required ({CATALOG_FORMAT_VERSION})")
    version = document["version"]
    if type(version) is not int or version != CATALOG_FORMAT_VERSION:
        raise empty.error("version", f"version must be {CATALOG_FORMAT_VERSION}, "
                                     f"not {version!r}")
    programme = document.get("programme")
    if programme is not None and (not isinstance(programme, str)
                                  or not CODE_PATTERN.match(programme)):
        raise empty.error("programme", f"programme must be a programme code, not {programme!r}")
    rules_data = document.get("rules")
    if not isinstance(rules_data, list):
        raise empty.error("rules", "rules is required: a list of rule definitions")
    if len(rules_data) > MAX_CATALOG_RULES:
        raise empty.error("rules", f"a catalog may hold at most {MAX_CATALOG_RULES} rules, "
                                   f"not {len(rules_data)}")
    definitions: list[dict[str, Any]] = []
    first_index_of: dict[str, int] = {}
    for index, data in enumerate(rules_data):
        try:
            rule = parse_rule(data, path=f"rules[{index}]")
        except InvalidRule as error:
            raise empty.error(error.details["path"], error.message) from error
        if rule.code in first_index_of:
            first = first_index_of[rule.code]
            raise empty.error(
                f"rules[{index}].code",
                f"rules[{index}].code {rule.code!r} repeats rules[{first}] "
                f"({empty.where(f'rules[{first}].code')}); a code names one rule",
            )
        first_index_of[rule.code] = index
        definitions.append(rule.as_json())
    return Catalog(rules=definitions, programme=programme, source=empty.source,
                   positions=empty.positions)


def _parse_yaml(text: str, name: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The document and the position of every field, from one safe YAML parse."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise CatalogError(f"{name}:1: the file is empty", source=name, line=1, column=1,
                               path="")
        positions: dict[str, tuple[int, int]] = {"": (1, 1)}
        _yaml_positions(node, "", positions, name, set())
        document = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "cannot be read"
        raise CatalogError(
            f"{name}:{mark.line + 1}: invalid YAML at column {mark.column + 1}: {problem}",
            source=name, line=mark.line + 1, column=mark.column + 1, path="",
        ) from error
    except yaml.YAMLError as error:  # a character YAML refuses, before any mark exists
        raise CatalogError(f"{name}: invalid YAML: {error}", source=name, line=None,
                           column=None, path="") from error
    finally:
        loader.dispose()
    return document, positions


def _yaml_positions(node: yaml.Node, path: str, positions: dict[str, tuple[int, int]],
                    name: str, visited: set[int]) -> None:
    """Record where each field starts; refuse duplicate and non-text keys.

    An alias repeats a node already walked; walking it once keeps a file of
    nested aliases (the "billion laughs") from taking exponential time.
    """
    if id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key_node.tag == _YAML_MERGE_TAG:  # `<<: *defaults`, walked where it is defined
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _YAML_STRING_TAG:
                raise CatalogError(
                    f"{name}:{line}: keys must be text; quote {_yaml_source(key_node)!r}",
                    source=name, line=line, column=column, path=path,
                )
            key = key_node.value
            child = f"{path}.{key}" if path else key
            if key in seen:
                raise CatalogError(
                    f"{name}:{line}: {child} is given twice (first on line {seen[key]})",
                    source=name, line=line, column=column, path=child,
                )
            seen[key] = line
            positions[child] = (line, column)
            _yaml_positions(value_node, child, positions, name, visited)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            positions[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _yaml_positions(item, child, positions, name, visited)


def _yaml_source(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else node.start_mark.get_snippet()


def _parse_json(text: str, name: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The document (from the standard decoder) and the position of every field."""

    def refuse_constant(constant: str) -> None:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        document = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as error:
        raise CatalogError(
            f"{name}:{error.lineno}: invalid JSON at column {error.colno}: {error.msg}",
            source=name, line=error.lineno, column=error.colno, path="",
        ) from error
    except ValueError as error:
        raise CatalogError(f"{name}: invalid JSON: {error}", source=name, line=None,
                           column=None, path="") from error
    return document, _JsonPositions(text, name).scan()


class _JsonPositions:
    """Where each field of already-valid JSON starts, and which keys repeat.

    The standard decoder keeps no positions and silently keeps the last of
    two equal keys; this scanner walks the same text once more to find both.
    """

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.positions: dict[str, tuple[int, int]] = {}

    def scan(self) -> dict[str, tuple[int, int]]:
        start = self._skip_space(0)
        self.positions[""] = self._position(start)
        self._value(start, "")
        return self.positions

    def _position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def _skip_space(self, offset: int) -> int:
        while offset < len(self.text) and self.text[offset] in " \t\r\n":
            offset += 1
        return offset

    def _value(self, offset: int, path: str) -> int:
        """Scan the value at `offset`; returns the offset just after it."""
        character = self.text[offset]
        if character == "{":
            return self._object(offset, path)
        if character == "[":
            return self._array(offset, path)
        if character == '"':
            return scanstring(self.text, offset + 1)[1]
        return _JSON_LITERAL.match(self.text, offset).end()

    def _object(self, offset: int, path: str) -> int:
        offset = self._skip_space(offset + 1)
        seen: dict[str, int] = {}
        while self.text[offset] != "}":
            line, column = self._position(offset)
            key, offset = scanstring(self.text, offset + 1)
            child = f"{path}.{key}" if path else key
            if key in seen:
                raise CatalogError(
                    f"{self.name}:{line}: {child} is given twice (first on line {seen[key]})",
                    source=self.name, line=line, column=column, path=child,
                )
            seen[key] = line
            self.positions[child] = (line, column)
            offset = self._skip_space(self._skip_space(offset) + 1)  # past the colon
            offset = self._skip_space(self._value(offset, child))
            if self.text[offset] == ",":
                offset = self._skip_space(offset + 1)
        return offset + 1

    def _array(self, offset: int, path: str) -> int:
        offset = self._skip_space(offset + 1)
        index = 0
        while self.text[offset] != "]":
            child = f"{path}[{index}]"
            self.positions[child] = self._position(offset)
            offset = self._skip_space(self._value(offset, child))
            if self.text[offset] == ",":
                offset = self._skip_space(offset + 1)
            index += 1
        return offset + 1


# -- import and export -----------------------------------------------------------------


def import_catalog(engine: Engine, programme: str, catalog: Catalog, actor: str) -> ImportReport:
    """Record every rule of `catalog` that is new or changed, in file order.

    Each new version is its own admin entry (`set_rule`). Scope units are
    checked first, so a catalog naming a unit the programme lacks writes
    nothing. Should a later rule fail (another admin changing the same rule
    meanwhile: `RuleChanged`), the rules before it stay recorded and
    importing again finishes the job. Raises `UnknownProgramme`,
    `UnknownUnit` (naming the rule and its line), `RuleChanged`, and the
    ledger's errors.
    """
    programme_info = get_programme(engine, programme)
    with read_transaction(engine) as connection:
        for index, definition in enumerate(catalog.rules):
            scope = definition["scope"]
            if scope is None:
                continue
            try:
                require_unit(connection, programme_info.id, scope)
            except errors.UnknownUnit as error:
                raise errors.UnknownUnit(
                    f"{catalog.where(f'rules[{index}].scope')}: rule {definition['code']!r} is "
                    f"scoped to unit {scope!r}, which programme {programme!r} does not have; "
                    "create the unit or change the scope",
                    unit=scope, rule=definition["code"],
                ) from error
    version_before = {rule.code: rule.version for rule in current_rules(engine, programme)}
    created: list[tuple[str, int]] = []
    unchanged: list[str] = []
    for definition in catalog.rules:
        rule = set_rule(engine, programme, definition, actor)
        if rule.version == version_before.get(rule.code):
            unchanged.append(rule.code)
        else:
            created.append((rule.code, rule.version))
    return ImportReport(created=created, unchanged=unchanged)


def export_catalog(engine: Engine, programme: str, format: str = "yaml") -> str:
    """The newest version of every rule of `programme`, as catalog text.

    Every field is written, defaults too, so the file says everything the
    rules say. The programme is left out: an exported catalog imports into
    any programme, and export, import elsewhere, export gives the same text.
    Raises `UnknownProgramme`.
    """
    definitions = [rule.as_json() for rule in current_rules(engine, programme)]
    return dump_catalog(definitions, format)


def dump_catalog(definitions: Sequence[Mapping[str, Any]], format: str = "yaml",
                 header: str = "") -> str:
    """Catalog text for `definitions` (YAML with an optional comment header, or JSON)."""
    if format == "json":
        document = {"version": CATALOG_FORMAT_VERSION, "rules": list(definitions)}
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if format != "yaml":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    document = {
        "version": CATALOG_FORMAT_VERSION,
        "rules": [_with_dates(definition) for definition in definitions],
    }
    body = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100)
    return header + body


def _with_dates(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Dates as YAML dates (2026-01-01, unquoted), the way people write them."""
    return {
        key: date.fromisoformat(value)
        if key in ("in_force_from", "in_force_until") and isinstance(value, str)
        else value
        for key, value in definition.items()
    }


def sample_catalog_path(name: str) -> Path:
    """The path of a shipped sample catalog (`community-24`, or `community-24.yaml`)."""
    stem = name.removesuffix(".yaml")
    if stem not in SAMPLE_CATALOGS:
        raise ValueError(f"no sample catalog {name!r}; there are {', '.join(SAMPLE_CATALOGS)}")
    return Path(str(resources.files("ledger") / "sample_catalogs" / f"{stem}.yaml"))


# -- the generated city catalog --------------------------------------------------------
#
# One city folded 191 governance items into its points system (shared/DOMAIN.md).
# The generated catalog has that shape: fifteen families of items, each family a
# category with its own habits (honours need approval and evidence, deductions
# need approval, meetings count once a day, ...). Nothing here is random, so the
# committed file can be checked against the generator.

CITY_PREFIX = "city"
CITY_DEFAULT_ITEMS = 191


def _cap(per: str, period: str, times: int | None = None,
         points: int | None = None) -> dict[str, Any]:
    cap: dict[str, Any] = {"per": per, "period": period}
    if points is not None:
        cap["max_points"] = points
    if times is not None:
        cap["max_times"] = times
    return cap


def _item(slug: str, name: str, description: str, points: int, *caps: dict[str, Any],
          **fields: Any) -> dict[str, Any]:
    """A fixed-points award; `fields` adds or overrides rule fields."""
    return {"slug": slug, "name": name, "description": description, "sign": "award",
            "points": points, "caps": list(caps), **fields}


_APPROVED = {"approval": "always", "evidence_required": True}

_HONOUR_LEVELS = (
    ("village", "村级", "village", 5),
    ("town", "镇级", "town", 10),
    ("county", "县级", "county", 20),
    ("city", "市级", "city", 30),
    ("province", "省级", "provincial", 50),
    ("national", "国家级", "national", 100),
)
_HONOUR_TITLES = (
    ("good-person", "好人", "good Samaritan (好人)", "member"),
    ("model-volunteer", "优秀志愿者", "outstanding volunteer", "member"),
    ("filial-model", "孝老爱亲模范", "model of filial care", "member"),
    ("civilised-family", "文明家庭", "civilised family (文明家庭)", "household"),
    ("beautiful-family", "最美家庭", "most beautiful family (最美家庭)", "household"),
    ("beautiful-courtyard", "美丽庭院", "beautiful courtyard (美丽庭院)", "household"),
)
_VOLUNTEER_FIELDS = (  # slug, name, what, points per 60 minutes, most minutes per activity
    ("elderly-care", "助老服务", "care for elderly residents", 6, 240),
    ("disability-help", "助残服务", "help for residents with disabilities", 6, 240),
    ("child-care", "托管学堂", "after-school care for children (托管学堂)", 5, 240),
    ("environment", "环境保护", "environmental protection", 5, 480),
    ("traffic", "文明交通劝导", "civilised-traffic guidance at crossings", 4, 240),
    ("flood-control", "防汛抗旱", "flood and drought duty", 10, 480),
    ("emergency-rescue", "应急救援", "emergency rescue", 10, 480),
    ("culture", "文化宣传", "cultural outreach", 4, 240),
    ("legal-aid", "法律服务", "legal aid for residents", 6, 240),
    ("medical-clinic", "义诊服务", "free medical clinics", 6, 240),
    ("cooling-point", "共享清凉纳凉点值守", "staffing a shared cooling point (共享清凉)", 4, 480),
    ("door-knocking", "敲门行动", "door-knocking visits to vulnerable residents (敲门行动)", 5,
     240),
    ("tutoring", "爱心课堂", "tutoring in the caring classroom (爱心课堂)", 5, 180),
    ("river-patrol", "河湖巡护", "river and lake patrols (河伙人)", 5, 480),
)
_HAZARD_KINDS = (  # the five guards of the red sentinels (红色哨兵 “五防”)
    ("fire", "防火", "fire"),
    ("disaster", "防灾", "natural-disaster"),
    ("disorder", "防乱", "public-order"),
    ("hardship", "防困", "hardship"),
    ("fraud", "防诈", "fraud"),
)
_HAZARD_SEVERITIES = (
    ("general", "一般", "an ordinary", 2),
    ("significant", "较大", "a significant", 5),
    ("major", "重大", "a major", 20),
)
_MEETINGS = (
    ("villagers-assembly", "参加村(居)民代表大会", "the villagers' (residents') assembly", 5),
    ("party-day", "参加主题党日活动", "a themed party day", 3),
    ("night-talk", "参加“村湾夜话”", "a village-group night talk (村湾夜话)", 3),
    ("starry-night-talk", "参加“星空夜话”", "a starry-night talk (星空夜话)", 3),
    ("round-table", "参加小区圆桌会", "a residential-compound round table (小区圆桌会)", 3),
    ("courtyard-meeting", "参加屋场会", "a courtyard meeting (屋场会)", 3),
    ("three-party", "参加“三方联动”联席会",
     "a joint meeting of community, owners' committee and property manager (三方联动)", 3),
    ("open-air-meeting", "参加坝坝会", "an open-air neighbourhood meeting (坝坝会)", 2),
    ("hearing", "参加村务听证会", "a village-affairs hearing", 3),
    ("household-heads", "参加户主会", "a household heads' meeting (one per household)", 3),
)
_DEDUCTIONS = (  # slug, name, what happened, points deducted, counted per
    ("banquet-beyond-three", "操办规定三类以外的宴席(无事酒)",
     "Held a banquet of a kind beyond the three the village rules allow (无事酒).", 20,
     "household"),
    ("banquet-oversized", "宴席超过规定桌数", "Held a banquet larger than the rules allow.",
     10, "household"),
    ("gift-over-200", "人情礼金超过200元", "Gave a gift of money over 200 yuan (人情礼金超标).",
     10, "member"),
    ("extravagant-funeral", "丧事大操大办", "Held an extravagant funeral.", 15, "household"),
    ("high-bride-price", "索要高额彩礼", "Demanded an excessive bride price (高价彩礼).", 20,
     "household"),
    ("garbage-unsorted", "垃圾未分类投放", "Put out unsorted rubbish.", 2, "household"),
    ("clutter", "房前屋后乱堆乱放", "Piled clutter in front of or behind the house.", 3,
     "household"),
    ("littering", "乱扔垃圾", "Dropped litter.", 2, "member"),
    ("straw-burning", "焚烧秸秆或垃圾", "Burned straw or rubbish in the open.", 5, "household"),
    ("livestock-roaming", "畜禽散养污染村道", "Let livestock roam and foul the lanes.", 3,
     "household"),
    ("sewage", "生活污水乱排", "Let household sewage into lanes or ditches.", 5, "household"),
    ("illegal-building", "违章搭建", "Built without permission.", 20, "household"),
    ("flying-wire-charging", "电动车飞线充电",
     "Charged an e-bike over a dangling cable (飞线充电).", 5, "household"),
    ("fire-exit-blocked", "堵塞消防通道", "Blocked a fire exit.", 5, "member"),
    ("gambling", "参与赌博", "Took part in gambling.", 20, "member"),
    ("superstition", "搞封建迷信活动", "Organised superstitious rites.", 10, "member"),
    ("dispute-escalated", "邻里纠纷恶意闹事", "Escalated a neighbour dispute maliciously.", 10,
     "member"),
    ("elder-neglect", "不履行赡养义务", "Neglected the duty to support elderly parents.", 30,
     "member"),
    ("dog-unleashed", "遛狗不牵绳", "Walked a dog without a lead.", 2, "member"),
    ("noise", "噪音扰民", "Made noise that disturbed the neighbours.", 2, "member"),
    ("thrown-from-height", "高空抛物", "Threw something from a height.", 20, "member"),
    ("farmland-abandoned", "撂荒耕地", "Left farmland abandoned (撂荒).", 10, "household"),
)


def _city_families() -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(family slug, category, items) in catalog order; items carry a `slug`."""
    honours = [
        _item(
            f"{level}.{title}", f"获评{level_name}“{title_name}”",
            f"Named a {level_english}-level {title_english}.", points,
            _cap(per, "year", times=1), roles=["reviewer", "admin"], **_APPROVED,
        )
        for title, title_name, title_english, per in _HONOUR_TITLES
        for level, level_name, level_english, points in _HONOUR_LEVELS
    ]
    volunteering = [
        {
            "slug": slug, "name": f"志愿服务·{name}",
            "description": f"Volunteer time spent on {what}: {points} points per hour, "
                           f"rounded down, at most {minutes} minutes per activity.",
            "sign": "award",
            "per_unit": {"unit": "minute", "points": points, "per": 60, "max_quantity": minutes},
            "caps": [_cap("member", "day", points=points * 8),
                     _cap("member", "month", points=points * 60)],
            **({"approval": "above", "approval_above_points": points * 4}
               if minutes > 240 else {}),
        }
        for slug, name, what, points, minutes in _VOLUNTEER_FIELDS
    ]
    hazards = [
        _item(
            f"{kind}.{severity}", f"{kind_name}隐患上报经核实({severity_name})",
            f"A confirmed report of {severity_english} {kind_english} hazard through the "
            "red-sentinel app (随手拍).", points,
            _cap("member", "day", times=5), evidence_required=True, cooldown_minutes=10,
            **({"approval": "always"} if severity == "major" else {}),
        )
        for kind, kind_name, kind_english in _HAZARD_KINDS
        for severity, severity_name, severity_english, points in _HAZARD_SEVERITIES
    ]
    meetings = [
        _item(slug, name, f"Attended {what}.", points,
              _cap("household" if slug == "household-heads" else "member", "day", times=1),
              _cap("member", "month", times=8))
        for slug, name, what, points in _MEETINGS
    ]
    deductions = [
        {"slug": slug, "name": name, "description": what, "sign": "deduction", "points": points,
         "caps": [_cap(per, "day", times=1)], **_APPROVED}
        for slug, name, what, points, per in _DEDUCTIONS
    ]
    environment = [
        _item("tidy-courtyard", "庭院整洁", "Courtyard found tidy at the monthly inspection.",
              5, _cap("household", "month", times=1)),
        _item("sorting-model", "垃圾分类示范户", "Model household for rubbish sorting (monthly).",
              3, _cap("household", "month", times=1)),
        _item("frontage", "落实“门前三包”",
              "Kept the frontage clean, green and orderly (门前三包, monthly).", 3,
              _cap("household", "month", times=1)),
        _item("tree-planting", "义务植树或认领绿化", "Planted trees or adopted a green strip.", 2,
              _cap("member", "month", times=4)),
        _item("ditch-dredging", "参与清淤疏渠", "Joined ditch and channel dredging.", 3,
              _cap("member", "day", times=1)),
        _item("toilet-renovation", "完成改厕", "Completed a toilet renovation.", 10,
              _cap("household", "lifetime", times=1), **_APPROVED),
        _item("kitchen-garden", "建设“小菜园”", "Built a tidy kitchen garden (小菜园).", 5,
              _cap("household", "year", times=1)),
        _item("culture-wall", "参与文化墙绘制", "Helped paint a culture wall.", 3,
              _cap("member", "month", times=2)),
        _item("cleanup-day", "参加大扫除", "Joined a clean-up day.", 3,
              _cap("member", "day", times=1)),
        _item("pest-control", "参与除“四害”", "Joined pest control.", 2,
              _cap("member", "week", times=1)),
        _item("adopted-lane", "认领村道保洁", "Kept an adopted lane clean (monthly).", 5,
              _cap("member", "month", times=1)),
        _item("recycling", "废旧物品回收", "Brought recyclables to the collection point.", 1,
              _cap("member", "day", times=1), _cap("member", "month", points=10)),
    ]
    family_virtues = [
        _item("family-motto", "订立家规家训", "Wrote down a family motto and rules (家规家训).",
              5, _cap("household", "lifetime", times=1)),
        _item("filial-care", "孝敬老人获邻里公认",
              "Recognised by the neighbours for caring for elders (monthly).", 5,
              _cap("household", "month", times=1), approval="always"),
        _item("simple-wedding", "婚事新办简办", "Held a simple wedding.", 10,
              _cap("household", "year", times=1), **_APPROVED),
        _item("simple-funeral", "丧事简办", "Held a simple funeral.", 10,
              _cap("household", "year", times=1), **_APPROVED),
        _item("low-bride-price", "零彩礼或低彩礼", "Married with no or a low bride price.", 10,
              _cap("household", "year", times=1), **_APPROVED),
        _item("harmonious-year", "家庭和睦无纠纷(年度)",
              "A harmonious family with no disputes all year.", 5,
              _cap("household", "year", times=1)),
        _item("no-admission-banquet", "子女升学不办升学宴",
              "Held no banquet for a child's school admission.", 5,
              _cap("household", "year", times=1), evidence_required=True),
        _item("reading-family", "书香家庭", "A reading family (书香家庭).", 5,
              _cap("household", "year", times=1), approval="always"),
        _item("family-story", "分享家风故事", "Shared a family-virtue story at a community event.",
              3, _cap("member", "month", times=1)),
        _item("parents-school", "参加家长学校", "Attended the parents' school.", 2,
              _cap("member", "month", times=2)),
    ]
    deliberation = [
        _item("proposal-adopted", "提出建议被采纳", "A proposal was adopted by the village.", 10,
              _cap("member", "month", times=2), **_APPROVED),
        _item("issue-raised", "通过“码上议”提交议题",
              "Raised an issue on the online deliberation platform (码上议).", 2,
              _cap("member", "week", times=2)),
        _item("vote", "参与村(居)务投票", "Voted in a village or community decision.", 2,
              _cap("member", "day", times=1)),
        _item("supervisor", "担任村务监督员履职",
              "Served as a village-affairs supervisor (monthly).", 5,
              _cap("member", "month", times=1)),
        _item("mediation", "调解邻里纠纷成功", "Settled a dispute between neighbours.", 5,
              _cap("member", "month", times=5), **_APPROVED),
        _item("survey", "参与满意度测评", "Took part in a satisfaction survey.", 1,
              _cap("member", "month", times=2)),
        _item("crowdfunding", "参与“大湾众筹”",
              "Contributed to a village-group crowdfunding project (大湾众筹).", 5,
              _cap("household", "year", times=2), approval="always"),
        _item("rota", "参与“小湾轮值”", "Took a turn on the village-group rota (小湾轮值).", 3,
              _cap("household", "month", times=2)),
    ]
    mutual_aid = [
        _item("help-request", "完成群众点单服务",
              "Completed a help request from a resident (群众点单).", 3,
              _cap("member", "day", times=3)),
        _item("good-rating", "服务获群众好评", "A resident rated the help good (群众评单).", 1,
              _cap("member", "day", times=3)),
        _item("lone-elder-visit", "探访独居老人", "Visited an elderly resident living alone.", 2,
              _cap("member", "day", times=2)),
        _item("meal-delivery", "为老人送餐",
              "Delivered meals from the happiness canteen (幸福食堂).", 2,
              _cap("member", "day", times=2)),
        _item("silver-companion", "结对“银发伴友”",
              "Paired with an older resident as a silver companion (银发伴友团).", 5,
              _cap("member", "year", times=1)),
        _item("tool-sharing", "邻里共享工具", "Lent tools to neighbours.", 1,
              _cap("member", "week", times=2)),
        _item("harvest-help", "帮助农户抢收", "Helped a household bring in the harvest.", 5,
              _cap("member", "day", times=1)),
        _item("central-household-head", "中心户长履职",
              "Served as central household head for about ten households (十户共治, monthly).",
              10, _cap("member", "month", times=1), roles=["reviewer", "admin"]),
        _item("building-head", "楼栋长履职", "Served as building head (楼栋长, monthly).", 10,
              _cap("member", "month", times=1), roles=["reviewer", "admin"]),
        _item("rescue", "紧急施救邻里", "Gave urgent help to a neighbour in danger.", 20,
              **_APPROVED),
    ]
    party_building = [
        _item("in-post-member", "在职党员到社区报到",
              "An employed party member reported to serve in the community.", 3,
              _cap("member", "year", times=1)),
        _item("pioneer-post", "党员先锋岗值守", "Staffed a party-member pioneer post.", 3,
              _cap("member", "day", times=1)),
        _item("red-steward", "担任“红管家”", "Served as a red steward (红管家, monthly).", 5,
              _cap("member", "month", times=1)),
        _item("secretaries-lecture", "参加“支部书记大讲堂”",
              "Attended the branch secretaries' lecture.", 2, _cap("member", "month", times=2)),
        _item("paired-help", "党员结对帮扶困难户",
              "A party member helped a paired household in hardship (monthly).", 5,
              _cap("member", "month", times=1)),
        _item("public-pledge", "践行党员公开承诺", "Fulfilled a public party-member pledge.", 5,
              _cap("member", "year", times=2), **_APPROVED),
        _item("compound-branch", "参加小区党支部活动",
              "Took part in the residential-compound party branch's activity.", 2,
              _cap("member", "day", times=1)),
        _item("mobile-member", "流动党员参加组织生活",
              "A mobile party member took part in branch life.", 2,
              _cap("member", "month", times=2)),
        _item("party-adviser", "党建指导员下沉服务",
              "A party-building adviser served a firm or association.", 3,
              _cap("member", "week", times=1)),
        _item("red-property", "参与“红色物业”共建",
              "Joined the red property-management (红色物业) joint work.", 3,
              _cap("member", "month", times=2)),
    ]
    civility = [
        _item("neighbours-festival", "参加邻居节", "Took part in the neighbours' festival.", 2,
              _cap("member", "day", times=1)),
        _item("open-air-show", "参加露天观影或晚会", "Attended an open-air film or evening show.",
              1, _cap("member", "day", times=1)),
        _item("performance", "参加文艺演出", "Performed in a cultural show.", 3,
              _cap("member", "day", times=1)),
        _item("reading-club", "参加读书会", "Attended a reading club.", 2,
              _cap("member", "week", times=1)),
        _item("skills-training", "参加技能培训", "Attended skills training.", 3,
              _cap("member", "month", times=4)),
        _item("anti-fraud-talk", "参加反诈宣传讲座", "Attended an anti-fraud talk.", 2,
              _cap("member", "month", times=2)),
        _item("first-aid", "参加急救技能培训", "Completed first-aid training (心肺复苏).", 5,
              _cap("member", "year", times=2), evidence_required=True),
        _item("civility-pledge", "签订文明公约承诺书", "Signed the civility pledge.", 2,
              _cap("household", "lifetime", times=1)),
        _item("history-donation", "为村史馆捐赠史料",
              "Donated material to the village history museum.", 5,
              _cap("member", "year", times=2), **_APPROVED),
        _item("fitness", "参加全民健身活动", "Took part in a community sports event.", 2,
              _cap("member", "week", times=1)),
    ]
    development = [
        _item("cooperative-founder", "带头成立合作社", "Led the founding of a cooperative.", 30,
              _cap("member", "lifetime", times=1), **_APPROVED),
        _item("cooperative-member", "加入专业合作社", "Joined a farmers' cooperative.", 5,
              _cap("member", "lifetime", times=1)),
        _item("land-transfer", "支持土地流转",
              "Supported a land transfer for a village project.", 10,
              _cap("household", "year", times=1), approval="always"),
        _item("contract-farming", "参与订单农业", "Took part in contract farming (订单农业).", 5,
              _cap("household", "year", times=1)),
        _item("job-referral", "帮助邻里就业", "Found a job for a neighbour.", 5,
              _cap("member", "year", points=25), **_APPROVED),
        _item("online-sales", "开展农产品电商销售", "Sold the village's produce online.", 5,
              _cap("member", "month", times=1)),
        _item("returning-founder", "返乡创业", "Came home and started a business.", 20,
              _cap("member", "lifetime", times=1), **_APPROVED),
        {"slug": "project-labour", "name": "投工投劳建设村级项目",
         "description": "Labour given to a village project (投工投劳): 3 points per hour, "
                        "rounded down, at most 480 minutes a day.",
         "sign": "award",
         "per_unit": {"unit": "minute", "points": 3, "per": 60, "max_quantity": 480},
         "caps": [_cap("member", "day", points=24)]},
        _item("collective-economy", "参与村集体经济项目",
              "Took part in a collective-economy project.", 5, _cap("member", "month", times=1)),
        _item("demonstration-household", "科技示范户",
              "A science and technology demonstration household.", 10,
              _cap("household", "year", times=1), approval="always"),
    ]
    safety = [
        _item("night-patrol", "参加平安巡逻", "Joined a night safety patrol.", 3,
              _cap("member", "day", times=1), _cap("member", "month", points=30)),
        _item("dispute-tip", "上报矛盾纠纷线索",
              "Told the grid worker about a dispute before it grew.", 2,
              _cap("member", "day", times=2), evidence_required=True, cooldown_minutes=30),
        _item("anti-drug", "参与禁毒宣传", "Helped with anti-drug outreach.", 2,
              _cap("member", "month", times=2)),
        _item("fire-drill", "参加消防演练", "Took part in a fire drill.", 3,
              _cap("member", "month", times=1)),
        _item("flood-drill", "参加防汛演练", "Took part in a flood drill.", 3,
              _cap("member", "month", times=1)),
        _item("fraud-stopped", "成功劝阻电信诈骗", "Stopped a neighbour from being defrauded.",
              10, **_APPROVED),
        _item("lost-property", "拾金不昧", "Returned lost property to its owner.", 5,
              **_APPROVED),
        _item("safety-post", "平安志愿者值守", "Staffed a safety volunteer post.", 2,
              _cap("member", "day", times=1)),
        _item("gas-inspection", "配合燃气安全检查", "Let the gas-safety inspectors in.", 1,
              _cap("household", "year", times=2)),
        _item("drowning-watch", "参与防溺水巡查", "Joined the drowning-prevention patrols.", 3,
              _cap("member", "day", times=1)),
    ]
    new_workers = [
        _item("mobile-sentinel", "骑手担任“流动哨兵”",
              "A delivery rider served as a mobile sentinel (流动哨兵, monthly).", 5,
              _cap("member", "month", times=1)),
        _item("elderly-delivery", "骑手助老配送",
              "A delivery rider delivered for an elderly resident.", 2,
              _cap("member", "day", times=3)),
        _item("station-duty", "暖“新”驿站志愿值守",
              "Staffed a warm station for delivery workers (暖新驿站).", 2,
              _cap("member", "day", times=1)),
        _item("grid-helper", "兼职网格员履职", "Served as a part-time grid worker (monthly).", 5,
              _cap("member", "month", times=1)),
        _item("food-safety", "兼职食品安全监督员上报",
              "A part-time food-safety monitor's confirmed report.", 2,
              _cap("member", "day", times=3), evidence_required=True, cooldown_minutes=30),
        _item("best-rider", "获评“最美小哥”", "Named best delivery rider (最美小哥).", 20,
              _cap("member", "year", times=1), **_APPROVED),
    ]
    old_and_young = [
        _item("companion-visit", "银发伴友团关爱探访",
              "A silver-companion visit (安全探访、心理陪伴).", 2, _cap("member", "day", times=2)),
        _item("canteen-help", "幸福食堂帮厨", "Helped cook at the happiness canteen.", 2,
              _cap("member", "day", times=1)),
        _item("after-school", "托管学堂志愿", "Volunteered at the after-school club.", 3,
              _cap("member", "day", times=1)),
        _item("water-watch", "暑期防溺水看护", "Watched children near water in summer.", 3,
              _cap("member", "day", times=1)),
        _item("elder-birthday", "为高龄老人过生日", "Organised a birthday for a very old resident.",
              3, _cap("member", "month", times=2)),
        _item("health-talk", "参加健康讲座", "Attended a health talk.", 1,
              _cap("member", "month", times=2)),
        _item("care-call", "电话问候独居老人", "Phoned an elderly resident living alone.", 1,
              _cap("member", "day", times=1)),
        _item("stand-in-parent", "担任留守儿童“代理家长”",
              "Acted as stand-in parent for a left-behind child (monthly).", 10,
              _cap("member", "month", times=1), approval="always"),
        _item("home-adaptation", "协助适老化改造", "Helped adapt a home for an elderly resident.",
              5, _cap("member", "month", times=2)),
        _item("hospital-escort", "陪同老人就医", "Took an elderly resident to hospital.", 3,
              _cap("member", "day", times=1)),
    ]
    return [
        ("meeting", "会议议事", meetings),
        ("volunteer", "志愿服务", volunteering),
        ("hazard", "红色哨兵", hazards),
        ("rules", "村规民约", deductions),
        ("environment", "人居环境", environment),
        ("family", "家风家教", family_virtues),
        ("deliberation", "民主协商", deliberation),
        ("mutual-aid", "邻里互助", mutual_aid),
        ("party", "党建引领", party_building),
        ("civility", "文明创建", civility),
        ("development", "产业发展", development),
        ("safety", "平安建设", safety),
        ("new-workers", "新就业群体", new_workers),
        ("old-and-young", "一老一小", old_and_young),
        ("honour", "荣誉表彰", honours),
    ]


def generate_city_catalog(items: int = CITY_DEFAULT_ITEMS) -> str:
    """A large catalog like one city's scheme of 191 items, as YAML text.

    Items are taken from the families in turn (one from each, then a second
    from each, ...), so any size keeps every category; the file lists them by
    family. Deterministic: the same `items` gives the same text.
    """
    families = _city_families()
    available = sum(len(family_items) for _, _, family_items in families)
    if not 1 <= items <= available:
        raise ValueError(f"the city catalog has from 1 to {available} items, not {items}")
    taken = [0] * len(families)
    remaining = items
    depth = 0
    while remaining:
        for index, (_, _, family_items) in enumerate(families):
            if remaining and depth < len(family_items):
                taken[index] += 1
                remaining -= 1
        depth += 1
    definitions = []
    for (family, category, family_items), count in zip(families, taken, strict=True):
        for item in family_items[:count]:
            definition = {"code": f"{CITY_PREFIX}.{family}.{item['slug']}",
                          "name": item["name"], "category": category}
            definition.update((key, value) for key, value in item.items() if key != "slug")
            if not definition["caps"]:
                del definition["caps"]
            definitions.append(definition)
    header = (
        f"# A city-scale catalog of {items} items in {len(families)} categories, like the "
        "191 governance\n"
        "# items one city folded into its points system (shared/DOMAIN.md).\n"
        f"# Generated by `python -m ledger.catalogs generate-city --items {items} --out FILE`; "
        "do not edit\n# by hand: change the generator in ledger/catalogs.py and generate "
        "again.\n"
    )
    return dump_catalog(definitions, "yaml", header=header)


def _main(arguments: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.catalogs",
                                     description="Rule catalog tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    city = commands.add_parser("generate-city", help="Write the generated city catalog.")
    city.add_argument("--items", type=int, default=CITY_DEFAULT_ITEMS)
    city.add_argument("--out", type=Path, required=True, help="The YAML file to write.")
    options = parser.parse_args(arguments)
    options.out.write_text(generate_city_catalog(options.items), encoding="utf-8")
    print(f"wrote {options.items} rules to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
