"""Marshmallow schemas shared by several areas of the API.

Request schemas refuse unknown fields (a typo is an error, not silently
ignored); response schemas document exactly what is sent. The OpenAPI
document is generated from these same classes.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

CODE = validate.Regexp(r"^[a-z0-9][a-z0-9._-]{0,63}$", error="must be a code: a-z, 0-9, . _ -")


class RequestSchema(Schema):
    class Meta:
        unknown = RAISE


class ProblemSchema(Schema):
    """RFC 9457 problem details, with the stable `code`."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "stable, machine-readable"})
    detail = fields.String(required=True)
    instance = fields.String()
    request_id = fields.String(allow_none=True)
    errors = fields.List(fields.Dict(), metadata={"description": "validation errors by field"})


class PostingSchema(Schema):
    account = fields.String(required=True)
    points = fields.Integer(required=True)


class RuleRefSchema(Schema):
    code = fields.String(required=True)
    version = fields.Integer(required=True)
    quantity = fields.Integer(allow_none=True)


class EntrySchema(Schema):
    """An entry as recorded; `hash` and `prev_hash` are lower-case hex (docs/FORMAT.md)."""

    programme = fields.String(required=True)
    seq = fields.Integer(required=True)
    kind = fields.String(required=True)
    postings = fields.List(fields.Nested(PostingSchema), required=True)
    actor = fields.String(required=True)
    approver = fields.String(allow_none=True)
    occurred_at = fields.String(required=True)
    recorded_at = fields.String(required=True)
    evidence = fields.String(allow_none=True)
    memo = fields.String(required=True)
    metadata = fields.Dict(required=True)
    idempotency_key = fields.String(allow_none=True)
    reverses = fields.Integer(allow_none=True)
    rule = fields.Nested(RuleRefSchema, allow_none=True)
    prev_hash = fields.Function(lambda entry: entry.prev_hash.hex() if entry.prev_hash else None,
                                allow_none=True)
    hash = fields.Function(lambda entry: entry.hash.hex(), required=True)


class RefusalSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
