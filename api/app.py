"""The Flask application factory.

`create_app()` builds an app from the environment (`api.config.Settings`);
gunicorn runs `api.app:create_app()` with `api/gunicorn.conf.py`. Tests
build apps with their own settings. Nothing here runs at import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from flask_smorest import Api, Blueprint
from marshmallow import INCLUDE
from sqlalchemy.engine import Engine
from swagger_ui_bundle import swagger_ui_path

from api import observability, problems
from api.auth import authenticate
from api.config import Settings
from api.routes import BLUEPRINTS, PUBLIC_BLUEPRINTS
from api.schemas import ProblemSchema
from ledger import migrations
from ledger.storage import create_engine
from web.app import install as install_pages

API_VERSION = "1"


class ProblemDetailsSchema(ProblemSchema):
    """A problem as documented: the fields of `ProblemSchema`, plus the refusal's own details."""

    class Meta:
        unknown = INCLUDE


class ProblemApi(Api):
    """flask-smorest's `Api`, documenting every error response as RFC 9457 problem details.

    flask-smorest documents its own `{code, status, message}` error body as
    `application/json` (the `default` response of every operation, and the
    422 of `@arguments`); this API answers every refusal with
    `application/problem+json` instead (`api.problems`), so the document
    says that, and a client or fuzzer checking responses against it agrees.
    """

    def _register_responses(self) -> None:
        for status in HTTPStatus:
            if status >= 400:
                self.spec.components.response(status.name, _problem_response(status.phrase),
                                              lazy=True)
        self.spec.components.response(
            self.DEFAULT_ERROR_RESPONSE_NAME,
            _problem_response("A refusal: problem details with a stable `code`"), lazy=True)


def _problem_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": ProblemDetailsSchema}}}


@dataclass
class JifenExtension:
    """What views reach through `current_app.extensions["jifen"]`."""

    settings: Settings
    engine: Engine
    metrics: observability.Metrics


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_environment()
    app = Flask("jifen")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
        API_TITLE="jifen-ledger",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {
                "description": "The books of community points programmes (积分制). "
                "Every refusal is an RFC 9457 problem with a stable `code`; see docs/API.md.",
            },
            "components": {
                "securitySchemes": {
                    "apiKey": {"type": "http", "scheme": "bearer",
                               "description": "jf_<prefix>_<secret>"}
                }
            },
            "security": [{"apiKey": []}],
        },
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    observability.configure_logging(settings.log_level)
    metrics = observability.Metrics()
    app.extensions["jifen"] = JifenExtension(settings, create_engine(settings.database_url),
                                             metrics)
    if settings.trust_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

    observability.install(app, metrics)  # first, so every later hook sees the request id
    _let_query_schemas_refuse_unknown_parameters()
    api = ProblemApi(app)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    protected = {blueprint.name for blueprint in BLUEPRINTS} - {
        blueprint.name for blueprint in PUBLIC_BLUEPRINTS}

    @app.before_request
    def authenticate_first() -> None:
        """Who is asking comes before what they ask: 401 precedes validation errors."""
        if request.blueprint in protected:
            authenticate()

    _install_media_type_check(app, api)
    _install_nul_check(app)
    problems.install(app)
    _install_operations(app)
    install_pages(app)  # the pages for people (web/), on the same app and database
    return app


def _let_query_schemas_refuse_unknown_parameters() -> None:
    """A misspelt `?dry_run` must be refused, not ignored while the award posts for real.

    webargs drops unknown query parameters whatever the schema says; with no
    per-location default, each query schema's own `Meta.unknown` decides, and
    `api.schemas.RequestSchema` refuses unknown fields (422 validation_error).
    The parser is the one all flask-smorest blueprints share, so this is set
    once for every route.
    """
    parser = Blueprint.ARGUMENTS_PARSER
    parser.DEFAULT_UNKNOWN_BY_LOCATION = parser.DEFAULT_UNKNOWN_BY_LOCATION | {"query": None}


def _install_media_type_check(app: Flask, api: Api) -> None:
    """A JSON-only operation sent a body that is not JSON answers 415, not a puzzling 422.

    webargs reads a body only when it is sent as JSON, so JSON sent as
    `text/plain` (or a form) would be validated as an empty object and
    answered "member: missing". Which operations take only JSON is read from
    the OpenAPI document; those taking other media types as well (sign-in
    sheets, catalogs) read the body themselves and refuse what they cannot.
    """
    json_only: set[tuple[str, str]] = set()

    def takes_only_json(rule: str, method: str) -> bool:
        if not json_only:
            for path, item in api.spec.to_dict()["paths"].items():
                for verb, operation in item.items():
                    if (isinstance(operation, dict) and "requestBody" in operation
                            and set(operation["requestBody"]["content"]) == {"application/json"}):
                        json_only.add((path, verb.upper()))
        return (_OPENAPI_PARAMETER.sub(r"{\1}", rule), method) in json_only

    @app.before_request
    def refuse_a_body_that_is_not_json() -> None:
        has_body = bool(request.content_length) or "chunked" in request.headers.get(
            "Transfer-Encoding", "").lower()
        if (request.url_rule is None or not has_body or request.is_json
                or not takes_only_json(request.url_rule.rule, request.method)):
            return
        raise problems.ApiProblem("unsupported_media_type", "send the body as application/json, "
                                  f"not {request.mimetype or 'without a Content-Type'}")


def _install_nul_check(app: Flask) -> None:
    """Text holding U+0000 (NUL) is refused (422), alike on both databases.

    PostgreSQL can neither store nor even compare such text (psycopg raises
    `DataError`, which would be a 500), while SQLite would store it. Checked
    here once for path parameters, query parameters, form fields and JSON
    bodies, so no view can forget. Files (sign-in sheets) are the parsers'.
    """

    @app.before_request
    def refuse_nul_in_text() -> Response | None:
        found = [name for name, value in (request.view_args or {}).items()
                 if isinstance(value, str) and NUL in value]
        found += [name for name, value in request.args.items(multi=True)
                  if NUL in name or NUL in value]
        if request.mimetype == "multipart/form-data":
            found += [name for name, value in request.form.items(multi=True)
                      if NUL in (name or "") or NUL in value]
        if request.is_json and request.content_length:
            try:
                found += list(_fields_holding_nul(request.get_json(silent=True)))
            except RecursionError:  # too deep to walk: the body's parser refuses it
                pass
        if not found:
            return None
        return problems.validation_problem(
            {field: ["must not contain the NUL character (U+0000)"] for field in found})


NUL = "\x00"


def _fields_holding_nul(value: Any, path: str = "") -> Iterator[str]:
    """Paths (`lines[3].memo`) of the strings, keys included, in `value` that hold NUL."""
    if isinstance(value, str):
        if NUL in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if NUL in key:
                yield child
            yield from _fields_holding_nul(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _fields_holding_nul(item, f"{path}[{index}]")


_OPENAPI_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
"""A werkzeug rule's `<int(max=9):seq>` is OpenAPI's `{seq}`."""


def _install_operations(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        """The process is up (it does not touch the database)."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response:
        """The database answers and is at the schema this code expects."""
        engine = app.extensions["jifen"].engine
        try:
            current = migrations.current_revision(engine)
        except Exception as error:  # any failure to reach the database means "not ready"
            return problems.problem("not_ready", f"the database does not answer: "
                                    f"{type(error).__name__}", status=503)
        expected = migrations.head_revision()
        if current != expected:
            return problems.problem("not_ready", f"the database is at schema {current}, this "
                                    f"code needs {expected}: run `jifen db upgrade`",
                                    status=503)
        return jsonify(status="ready", schema=current)

    @app.get("/docs/assets/<path:filename>")
    def swagger_assets(filename: str) -> Response:
        """Swagger UI's files, from the installed swagger-ui-bundle package (no CDN)."""
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
