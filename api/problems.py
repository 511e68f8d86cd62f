"""RFC 9457 problem details: the one place refusals become HTTP responses.

Every error response is `application/problem+json`:

    {"type": "/problems/over_cap", "title": "Over cap", "status": 422,
     "code": "over_cap", "detail": "<what was wrong, for a person>",
     "instance": "/programmes/x/awards", "request_id": "...", ...details}

`code` is stable and machine-readable (clients branch on it); `detail` is
for people. Validation errors add `errors: [{"field": "lines[3].member",
"message": ...}]`. No stack trace ever reaches a client: an unexpected
exception is logged with its request id and answered with a plain 500.
"""

from __future__ import annotations

import json as standard_json
import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, json, request
from marshmallow import ValidationError
from marshmallow.exceptions import SCHEMA
from werkzeug.exceptions import HTTPException

from ledger import errors

log = logging.getLogger("api")

STATUS_BY_CODE: dict[str, int] = {
    # 400: the request itself is malformed
    "bad_request": 400,
    "invalid_json": 400,
    "invalid_cursor": 400,
    "invalid_idempotency_key": 400,
    "forged": 400,
    # 401, 403: who you are, and what you may do
    "unauthenticated": 401,
    "invalid_key": 401,
    "forbidden": 403,
    "not_in_scope": 403,
    "role_not_allowed": 403,
    "same_person": 403,
    # 404
    "not_found": 404,
    "unknown_programme": 404,
    "unknown_unit": 404,
    "unknown_household": 404,
    "unknown_member": 404,
    "unknown_account": 404,
    "unknown_entry": 404,
    "unknown_rule": 404,
    "unknown_claim": 404,
    "unknown_grant": 404,
    "unknown_key": 404,
    "unknown_shop": 404,
    "unknown_item": 404,
    "unknown_voucher": 404,
    "unknown_key_id": 404,
    "no_checkpoint": 404,
    "method_not_allowed": 405,
    # 409: conflicts with the current state; a retry as-is will not help
    "idempotency_conflict": 409,
    "already_exists": 409,
    "already_reversed": 409,
    "claim_not_open": 409,
    "rule_changed": 409,
    "database_not_empty": 409,
    "request_in_progress": 409,
    "already_redeemed": 409,
    "cancelled": 409,
    "integrity_violation": 409,
    "append_only": 409,
    "checkpoint_inconsistent": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "too_many_guesses": 429,
    # 422: well-formed, but the rules refuse it
    "validation_error": 422,
    "invalid_entry": 422,
    "invalid_amount": 422,
    "unbalanced_postings": 422,
    "unknown_kind": 422,
    "invalid_quantity": 422,
    "invalid_rule": 422,
    "invalid_catalog": 422,
    "invalid_sheet": 422,
    "invalid_expiry_policy": 422,
    "over_cap": 422,
    "cooldown_active": 422,
    "rule_not_in_force": 422,
    "rule_out_of_scope": 422,
    "evidence_required": 422,
    "not_reversible": 422,
    "notice_closed": 422,
    "expired": 422,
    "wrong_shop": 422,
    "shop_suspended": 422,
    "wrong_programme": 422,
    "unknown_signing_key": 422,
    "insufficient_balance": 422,
    "out_of_stock": 422,
    "nothing_to_settle": 422,
    "empty_chain": 422,
    "size_beyond_head": 422,
    "seq_outside_tree": 422,
    "invalid_proof_range": 422,
    "invalid_period": 422,
    "invalid_board_query": 422,
    # 500: the installation is misconfigured
    "signing_key_unavailable": 500,
    # 503: try again shortly
    "storage_busy": 503,
}


class ApiProblem(Exception):
    """A refusal raised by the API layer itself (not by `ledger`)."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


def problem(code: str, detail: str, status: int | None = None, **extra: Any) -> Response:
    status = status or STATUS_BY_CODE.get(code, 400)
    body = {
        "type": f"/problems/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.path,
        "request_id": getattr(g, "request_id", None),
    }
    body.update({key: value for key, value in extra.items() if key not in body})
    response = Response(json.dumps(body, ensure_ascii=False), status=status,
                        mimetype="application/problem+json")
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


def install(app: Flask) -> None:
    """Register the error handlers on `app`."""

    app.register_error_handler(errors.LedgerError, ledger_problem)

    @app.errorhandler(ApiProblem)
    def api_refusal(error: ApiProblem) -> Response:
        g.refusal_code = error.code
        return problem(error.code, error.detail, **_own_details(error.extra))

    @app.errorhandler(ValidationError)
    def invalid_body(error: ValidationError) -> Response:
        return validation_problem(error.normalized_messages())

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        messages = (getattr(error, "data", None) or {}).get("messages")
        if error.code == 422 and messages:  # flask-smorest's webargs validation
            return validation_problem(messages)
        code = {
            400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
        }.get(error.code, "bad_request")
        detail = error.description or error.name
        if error.code == 400 and (_about_json(error) or "JSON" in str(messages or "")):
            code, detail = "invalid_json", "the request body is not valid JSON"
        if error.code == 413:
            detail = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        return problem(code, detail, status=error.code if error.code < 500 else 500)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": getattr(g, "request_id", None)})
        return problem("internal_error", "an unexpected error occurred; it has been logged "
                       "with this request id", status=500)

    @app.errorhandler(RecursionError)
    def nested_too_deeply(error: RecursionError) -> Response:
        """`[[[[...]]]]` exhausts the JSON parser's recursion: the body is at fault, not us."""
        if _raised_in_json_parser(error):
            return problem("invalid_json", "the request body is not valid JSON: it is nested "
                           "too deeply", status=400)
        return unexpected(error)


def ledger_problem(error: errors.LedgerError) -> Response:
    """The problem response for a refusal by `ledger` (or `redemption`)."""
    g.refusal_code = error.code
    return problem(error.code, error.message, **_jsonable(_own_details(error.details)))


def validation_problem(messages: Any) -> Response:
    """422 with one `{field, message}` per problem, fields as paths (`lines[3].member`)."""
    return problem("validation_error", "the request does not match its schema",
                   errors=list(_flatten(messages)))


def _flatten(messages: Any, path: str = "") -> Any:
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "form", "files", "headers", "view_args") and not path:
                yield from _flatten(value, "")
                continue
            if key == SCHEMA:  # marshmallow's key for an error about the value as a whole
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            yield from _flatten(value, child)
    elif isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        for message in messages:
            yield {"field": path or None, "message": message}
    elif isinstance(messages, list):
        for item in messages:
            yield from _flatten(item, path)
    else:
        yield {"field": path or None, "message": str(messages)}


def _about_json(error: BaseException | None) -> bool:
    """Whether a 400 is about the body's JSON: Flask (not in debug) raises a bare BadRequest
    from the one that says "Failed to decode JSON object"."""
    while error is not None:
        if "JSON" in str(getattr(error, "description", "") or ""):
            return True
        error = error.__cause__
    return False


_JSON_PACKAGE = Path(standard_json.__file__).parent


def _raised_in_json_parser(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None:
        return False
    return Path(traceback.tb_frame.f_code.co_filename).parent == _JSON_PACKAGE


PROBLEM_MEMBERS = frozenset({"type", "title", "status", "code", "detail", "instance",
                             "request_id"})


def _own_details(details: dict[str, Any]) -> dict[str, Any]:
    """A refusal's details, less any named like a problem member: a claim's `status`
    (approved, posted...) must not become the HTTP status."""
    return {key: value for key, value in details.items() if key not in PROBLEM_MEMBERS}


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, (str, int, float, bool, type(None), list, dict))
            else str(value) for key, value in details.items()}
