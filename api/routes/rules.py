"""Scoring rules and rule catalogs: read them, change one, import or export the whole book.

A rule changes only by gaining a version (`ledger.rules.set_rule`); sending
a definition identical to the current one adds nothing (200 instead of
201), so a retried PUT or a re-imported catalog writes nothing twice.

Rule definitions are validated by the ledger alone (`ledger.rules.parse_rule`),
not by a second, marshmallow copy of the same rules: a refusal is
`invalid_rule` (422) whose `path` names the field (`rule.caps[0].period`),
or for a catalog `invalid_catalog` naming the line (`catalog:37: ...`).

Who may change a rule: `admin` on a subtree holding the rule's scope unit,
both the scope it has now and the one it is given, so a village admin can
neither take over nor widen a rule of the whole town. A rule without a
scope applies to the whole programme: it needs `admin` on a top unit.
"""

from __future__ import annotations

import json

from flask import Response, request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate

from api.auth import STAFF_ROLES, Caller, engine, require_staff
from api.idempotency import idempotent
from api.problems import ApiProblem
from api.routes.organisation import require_admin_on, require_root_admin
from api.schemas import RequestSchema
from ledger.catalogs import export_catalog, import_catalog, load_catalog
from ledger.programmes import get_programme
from ledger.rules import UnknownRule, current_rules, parse_rule, rule_versions, set_rule

blueprint = Blueprint("rules", __name__, url_prefix="/programmes/<programme>",
                      description="Scoring rules, their versions, and rule catalogs.")

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class PerUnitSchema(Schema):
    unit = fields.String(required=True, metadata={"description": "e.g. minute"})
    points = fields.Integer(required=True)
    per = fields.Integer(required=True)
    max_quantity = fields.Integer(required=True, allow_none=True)


class CapSchema(Schema):
    per = fields.String(required=True, metadata={"description": "member or household"})
    period = fields.String(required=True,
                           metadata={"description": "day, week, month, year or lifetime"})
    max_points = fields.Integer(required=True, allow_none=True)
    max_times = fields.Integer(required=True, allow_none=True)


class RuleDefinitionSchema(Schema):
    """A rule definition as recorded: every field, defaults included (docs/RULES.md)."""

    code = fields.String(required=True)
    name = fields.String(required=True)
    category = fields.String(required=True)
    description = fields.String(required=True)
    sign = fields.String(required=True, metadata={"description": "award or deduction"})
    points = fields.Integer(required=True, allow_none=True,
                            metadata={"description": "fixed points, or null with per_unit"})
    per_unit = fields.Nested(PerUnitSchema, required=True, allow_none=True)
    scope = fields.String(required=True, allow_none=True,
                          metadata={"description": "a unit code: only members of its subtree"})
    caps = fields.List(fields.Nested(CapSchema), required=True)
    cooldown_minutes = fields.Integer(required=True)
    evidence_required = fields.Boolean(required=True)
    approval = fields.String(required=True, metadata={"description": "never, always or above"})
    approval_above_points = fields.Integer(required=True, allow_none=True)
    roles = fields.List(fields.String(), required=True)
    in_force_from = fields.String(required=True, allow_none=True,
                                  metadata={"description": "YYYY-MM-DD, programme time zone"})
    in_force_until = fields.String(required=True, allow_none=True,
                                   metadata={"description": "YYYY-MM-DD, exclusive"})


class PerUnitInputSchema(RequestSchema):
    unit = fields.String(required=True)
    points = fields.Integer(required=True)
    per = fields.Integer(metadata={"description": "default 1"})
    max_quantity = fields.Integer(allow_none=True)


class CapInputSchema(RequestSchema):
    per = fields.String(metadata={"description": "member (default) or household"})
    period = fields.String(required=True)
    max_points = fields.Integer(allow_none=True)
    max_times = fields.Integer(allow_none=True)


class RuleDefinitionInputSchema(RequestSchema):
    """What a PUT body or a catalog's rule may hold: documentation only, since
    `ledger.rules.parse_rule` is what validates, and refuses, definitions.

    Only what every definition needs is required: `points` or `per_unit`,
    not both; the rest have defaults (docs/RULES.md).
    """

    code = fields.String(metadata={"description": "default: the path's; must match it"})
    name = fields.String(required=True)
    category = fields.String(required=True)
    description = fields.String(allow_none=True)
    sign = fields.String(required=True, metadata={"description": "award or deduction"})
    points = fields.Integer(allow_none=True)
    per_unit = fields.Nested(PerUnitInputSchema, allow_none=True)
    scope = fields.String(allow_none=True)
    caps = fields.List(fields.Nested(CapInputSchema), allow_none=True)
    cooldown_minutes = fields.Integer(allow_none=True)
    evidence_required = fields.Boolean()
    approval = fields.String(metadata={"description": "never (default), always or above"})
    approval_above_points = fields.Integer(allow_none=True)
    roles = fields.List(fields.String(), metadata={"description": "default [organiser]"})
    in_force_from = fields.String(allow_none=True)
    in_force_until = fields.String(allow_none=True)


class CatalogInputSchema(RequestSchema):
    version = fields.Integer(required=True, metadata={"description": "the catalog format: 1"})
    programme = fields.String(metadata={"description": "ignored on import: the path decides"})
    rules = fields.List(fields.Nested(RuleDefinitionInputSchema), required=True)


class RuleSchema(RuleDefinitionSchema):
    version = fields.Integer(required=True, metadata={"description": "1, 2, ... per code"})


class RuleListSchema(Schema):
    items = fields.List(fields.Nested(RuleSchema), required=True)


class RuleHistorySchema(Schema):
    code = fields.String(required=True)
    versions = fields.List(fields.Nested(RuleSchema), required=True,
                           metadata={"description": "oldest first; the last is current"})


class RuleQuerySchema(RequestSchema):
    category = fields.String(load_default=None, validate=validate.Length(min=1, max=200))


class CatalogDocumentSchema(Schema):
    version = fields.Integer(required=True, metadata={"description": "the catalog format: 1"})
    programme = fields.String(metadata={"description": "ignored on import: the path decides"})
    rules = fields.List(fields.Nested(RuleDefinitionSchema), required=True)


class CreatedRuleSchema(Schema):
    code = fields.String(required=True)
    version = fields.Integer(required=True)


class ImportReportSchema(Schema):
    created = fields.List(fields.Nested(CreatedRuleSchema), required=True,
                          metadata={"description": "rules that gained a version, in file order"})
    unchanged = fields.List(fields.String(), required=True,
                            metadata={"description": "rules whose definition was already current"})


class ExportQuerySchema(RequestSchema):
    format = fields.String(load_default="yaml", validate=validate.OneOf(["yaml", "json"]))


@blueprint.route("/rules", methods=["GET"])
@blueprint.arguments(RuleQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, RuleListSchema)
def get_rules(programme: str, category: str | None):
    """The current version of every rule, by category then code."""
    require_staff(programme, STAFF_ROLES)
    rules = current_rules(engine(), programme)
    return {"items": [_rule(rule) for rule in rules
                      if category is None or rule.category == category]}


@blueprint.route("/rules/<rule>", methods=["GET"])
@blueprint.response(200, RuleHistorySchema)
def get_rule(programme: str, rule: str):
    """Every version of one rule, oldest first."""
    require_staff(programme, STAFF_ROLES)
    versions = rule_versions(engine(), get_programme(engine(), programme).id, rule)
    if not versions:
        raise UnknownRule(f"no rule {rule!r}", rule=rule)
    return {"code": rule, "versions": [_rule(version) for version in versions]}


@blueprint.route("/rules/<rule>", methods=["PUT"])
@idempotent
@blueprint.doc(requestBody={
    "description": "The rule's definition (docs/RULES.md); `code`, if given, must be the "
                   "path's. The server numbers versions, so `version` is not sent.",
    "required": True,
    "content": {"application/json": {"schema": RuleDefinitionInputSchema}},
})
@blueprint.response(201, RuleSchema, description="a new version")
@blueprint.alt_response(200, schema=RuleSchema,
                        description="the definition was already current: nothing written")
def put_rule(programme: str, rule: str):
    """Record a new version of a rule (admin over its scope; top-unit admin if unscoped)."""
    require_staff(programme, ("admin",))
    definition = _json_body()
    if not isinstance(definition, dict):
        raise ValidationError({"_schema": ["the body must be a JSON object: a rule definition"]})
    if definition.setdefault("code", rule) != rule:
        raise ValidationError({"code": [f"must be the rule code of the path, {rule!r}"]})
    proposed = parse_rule(definition)  # before authorising: the scope must be a real code
    versions = rule_versions(engine(), get_programme(engine(), programme).id, rule)
    current = versions[-1] if versions else None
    scopes = {proposed.scope} | ({current.scope} if current else set())
    caller = _require_rule_admin(programme, scopes)
    recorded = set_rule(engine(), programme, definition, caller.actor)
    created = current is None or recorded.version != current.version
    return _rule(recorded), 201 if created else 200


@blueprint.route("/catalog", methods=["POST"])
@idempotent
@blueprint.doc(requestBody={
    "description": "A rule catalog (docs/RULES.md): as JSON, as YAML text, or as a file in "
                   "the multipart field `catalog` (`.json` is JSON, anything else YAML). "
                   "Rules not in the catalog are left as they are.",
    "required": True,
    "content": {
        "application/json": {"schema": CatalogInputSchema},
        "application/yaml": {"schema": CatalogInputSchema},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "catalog": {"type": "string", "format": "binary"}}}},
    },
})
@blueprint.response(200, ImportReportSchema)
def post_catalog(programme: str):
    """Import a catalog: each new or changed rule gains a version; the rest stay as they are."""
    require_staff(programme, ("admin",))
    text, name, format = _catalog_upload()
    try:
        catalog = load_catalog(text, format=format, name=name)
    except RecursionError as error:  # the parsers recurse; ledger.catalogs lets this through
        raise ApiProblem("invalid_catalog", f"{name}: the catalog is nested too deeply",
                         source=name, line=None, column=None, path="") from error
    current = {rule.code: rule.scope for rule in current_rules(engine(), programme)}
    scopes = {definition["scope"] for definition in catalog.rules}
    scopes |= {current[definition["code"]] for definition in catalog.rules
               if definition["code"] in current}
    caller = _require_rule_admin(programme, scopes)
    report = import_catalog(engine(), programme, catalog, caller.actor)
    return {"created": [{"code": code, "version": version} for code, version in report.created],
            "unchanged": report.unchanged}


@blueprint.route("/catalog", methods=["GET"])
@blueprint.arguments(ExportQuerySchema, location="query", as_kwargs=True)
@blueprint.doc(responses={"200": {
    "description": "The current version of every rule, as a catalog file",
    "content": {"application/yaml": {"schema": CatalogDocumentSchema},
                "application/json": {"schema": CatalogDocumentSchema}},
}})
def get_catalog(programme: str, format: str):
    """Export the rules as a catalog (YAML by default, `?format=json`) that imports anywhere."""
    require_staff(programme, STAFF_ROLES)
    text = export_catalog(engine(), programme, format)
    mimetype = "application/json" if format == "json" else "application/yaml"
    response = Response(text, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{programme}-rules.{format}"')
    return response


def _require_rule_admin(programme: str, scopes: set[str | None]) -> Caller:
    """`admin` over every one of `scopes` (a None scope: the whole programme)."""
    caller = require_staff(programme, ("admin",))
    for scope in sorted(scopes, key=lambda scope: (scope is not None, scope or "")):
        caller = require_root_admin(programme) if scope is None else require_admin_on(
            programme, scope)
    return caller


def _json_body():
    """The body as JSON: the view reads it itself, since the ledger validates the definition."""
    if not request.is_json:
        raise ApiProblem("unsupported_media_type", "send the rule definition as "
                         "application/json")
    try:
        return json.loads(request.get_data())
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        raise ApiProblem("invalid_json", "the request body is not valid JSON") from error


def _catalog_upload() -> tuple[str, str, str | None]:
    """(text, name for messages, format) of the catalog in this request's body."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("catalog")
        if upload is None:
            raise ApiProblem("invalid_catalog", "send the catalog as the multipart field "
                             "`catalog`", source=None, line=None, column=None, path="")
        name = upload.filename or "catalog"
        suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
        format = {"json": "json", "yaml": "yaml", "yml": "yaml"}.get(suffix)
        content = upload.read()
    elif request.mimetype == "application/json":
        name, format, content = "catalog", "json", request.get_data()
    elif request.mimetype in YAML_TYPES:
        name, format, content = "catalog", "yaml", request.get_data()
    else:
        raise ApiProblem("unsupported_media_type", "send the catalog as application/json, "
                         "application/yaml, or a multipart/form-data file `catalog`")
    try:
        return content.decode("utf-8-sig"), name, format
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise ApiProblem("invalid_catalog", f"{name}:{line}: the file is not UTF-8 text",
                         source=name, line=line, column=None, path="") from error


def _rule(rule) -> dict:
    return rule.as_json() | {"version": rule.version}
