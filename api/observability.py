"""Request ids, JSON logs and Prometheus metrics.

Every request gets an id (the client's `X-Request-Id` if it is sane, else a
new one), echoed in the response and written in every log line and problem.
Logs are one JSON object per line on standard error. Metrics are served at
`/metrics`; under gunicorn with several workers set
`PROMETHEUS_MULTIPROC_DIR` (the gunicorn config does) so that every
worker's counts are summed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms", "actor", "code"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("api", "ledger"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (tests build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("jifen_http_requests_total", "HTTP requests",
                                ["method", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram("jifen_http_request_seconds", "HTTP request latency",
                                 ["method", "endpoint"], registry=self.registry,
                                 buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                          2.5, 5))
        self.entries = Counter("jifen_entries_appended_total", "Entries appended to chains",
                               ["kind"], registry=self.registry)
        self.refusals = Counter("jifen_refusals_total", "Requests refused, by problem code",
                                ["code"], registry=self.registry)

    def exposition(self) -> bytes:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)


def install(app: Flask, metrics: Metrics) -> None:
    log = logging.getLogger("api")

    @app.before_request
    def start() -> None:
        supplied = request.headers.get("X-Request-Id", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        metrics.latency.labels(request.method, endpoint).observe(elapsed)
        code = g.get("refusal_code")
        if code:
            metrics.refusals.labels(code).inc()
        response.headers["X-Request-Id"] = g.get("request_id", "")
        caller = g.get("caller")
        log.info("request", extra={
            "request_id": g.get("request_id"), "method": request.method, "path": request.path,
            "status": response.status_code, "duration_ms": round(elapsed * 1000, 2),
            "actor": caller.actor if caller else None, "code": code,
        })
        return response

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)


def record_appended(entries: Iterable[Any]) -> None:
    """Count entries a view appended to a chain (not replays), by kind."""
    metrics = current_app.extensions["jifen"].metrics
    for entry in entries:
        metrics.entries.labels(entry.kind).inc()


def record_refusals(codes: Iterable[str]) -> None:
    """Count refusals a view answered without raising (a sheet's refused lines), by code.

    A raised refusal is counted once, after the request (`g.refusal_code`).
    """
    metrics = current_app.extensions["jifen"].metrics
    for code in codes:
        metrics.refusals.labels(code).inc()
