"""The `Idempotency-Key` header: a retried write gets the original response, never a second effect.

For a write that carries the header, the API keeps the response it gave
(per API key and idempotency key) with a SHA-256 of the request (method,
path, query and body). A retry with the same key and the same request gets
that response again, marked `Idempotent-Replayed: true`; the same key with
another request is `409 idempotency_conflict`.

Exactly-once does not rest on this table alone: the key is also handed to
the ledger (`ledger_key()`), whose unique constraint makes a second posting
impossible even when two identical requests race past this check. What is
kept: successful responses and the ledger's own refusals (409, 422); not
authentication or validation failures, which a client fixes and retries.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime

from flask import Response, g, request
from sqlalchemy import insert, select

from api.auth import authenticate, engine
from api.problems import ApiProblem, ledger_problem, problem
from ledger import errors
from ledger.entry_format import format_timestamp
from ledger.models import IdempotencyRecord
from ledger.storage import read_transaction, write_transaction

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 150
KEPT_STATUSES = frozenset({200, 201, 409, 422})


def idempotent(view):
    """Decorate a write view: replays, conflicts and keeping the response."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            g.idempotency_key = None
            return view(*args, **kwargs)
        if not key or len(key) > MAX_KEY_CHARS or not (key.isascii() and key.isprintable()):
            raise ApiProblem("invalid_idempotency_key",
                             f"{HEADER} must be 1-{MAX_KEY_CHARS} printable ASCII characters")
        caller = authenticate()
        g.idempotency_key = key
        fingerprint = _fingerprint()
        kept = _find(caller.holder.key_id, key)
        if kept is not None:
            return _replay(kept, fingerprint, key)
        try:
            response = view(*args, **kwargs)
        except errors.LedgerError as refusal:  # kept too: a retry must not re-run the request
            response = ledger_problem(refusal)
        if response.status_code in KEPT_STATUSES:
            stored = _keep(caller.holder.key_id, key, fingerprint, response)
            if stored is not None:  # a concurrent twin kept its response first
                return _replay(stored, fingerprint, key)
        return response

    return wrapper


def ledger_key() -> str | None:
    """The idempotency key to hand to the ledger for this request, if the client sent one."""
    key = g.get("idempotency_key")
    if key is None:
        return None
    return f"api:{g.caller.holder.key_id}:{key}"


def _fingerprint() -> bytes:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode("latin-1")):
        digest.update(part.encode("utf-8") + b"\n")
    digest.update(request.get_data(cache=True))
    return digest.digest()


def _find(key_id: int, key: str):
    with read_transaction(engine()) as connection:
        return connection.execute(
            select(IdempotencyRecord).where(IdempotencyRecord.api_key_id == key_id,
                                            IdempotencyRecord.idempotency_key == key)
        ).first()


def _keep(key_id: int, key: str, fingerprint: bytes, response: Response):
    try:
        with write_transaction(engine()) as connection:
            connection.execute(insert(IdempotencyRecord).values(
                api_key_id=key_id, idempotency_key=key, request_sha256=fingerprint,
                status_code=response.status_code, response_body=response.get_data(as_text=True),
                created_at=format_timestamp(datetime.now(UTC)),
            ))
    except errors.IntegrityViolation:
        return _find(key_id, key)
    return None


def _replay(kept, fingerprint: bytes, key: str) -> Response:
    if kept.request_sha256 != fingerprint:
        return problem("idempotency_conflict",
                       f"{HEADER} {key!r} was used for a different request; use a new key for a "
                       "new request")
    mimetype = "application/problem+json" if kept.status_code >= 400 else "application/json"
    response = Response(kept.response_body, status=kept.status_code, mimetype=mimetype)
    response.headers["Idempotent-Replayed"] = "true"
    return response
