"""The Flask application factory.

`create_app()` builds an app from the environment (`api.config.Settings`);
gunicorn runs `api.app:create_app()` with `api/gunicorn.conf.py`. Tests
build apps with their own settings. Nothing here runs at import.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, jsonify, request, send_from_directory
from flask_smorest import Api
from sqlalchemy.engine import Engine
from swagger_ui_bundle import swagger_ui_path

from api import observability, problems
from api.auth import authenticate
from api.config import Settings
from api.routes import BLUEPRINTS
from ledger import migrations
from ledger.storage import create_engine

API_VERSION = "1"


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
    api = Api(app)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    protected = {blueprint.name for blueprint in BLUEPRINTS}

    @app.before_request
    def authenticate_first() -> None:
        """Who is asking comes before what they ask: 401 precedes validation errors."""
        if request.blueprint in protected:
            authenticate()

    problems.install(app)
    _install_operations(app)
    return app


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
