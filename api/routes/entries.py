"""The chain itself: its head, entries by `seq`, and reversals of awards and deductions.

The head (size, last hash, Merkle root) is what an auditor pins to check
later that nothing was rewritten. A member reads only entries that post to
their own account. Reversals are for awards and deductions, by a reviewer
or admin over every member the entry touches (`ledger.awards.reverse_award`).
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import STAFF_ROLES, engine, require_programme, require_staff
from api.idempotency import idempotent, ledger_key
from api.problems import ApiProblem
from api.schemas import EntrySchema, RequestSchema
from ledger.accounts import member_account
from ledger.awards import REVERSING_ROLES, reverse_award
from ledger.chain import MAX_MEMO_CHARS, get_entry, head

blueprint = Blueprint("entries", __name__, url_prefix="/programmes/<programme>",
                      description="The chain head, entries by seq, and reversals.")

MAX_SEQ = 2**63 - 1
"""`seq` is a 64-bit integer in the database; larger ones cannot exist."""


class HeadSchema(Schema):
    programme = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "how many entries"})
    head_hash = fields.Function(lambda tip: tip.head_hash.hex() if tip.head_hash else None,
                                allow_none=True, required=True,
                                metadata={"description": "hash of the last entry (hex); null "
                                                         "for an empty chain"})
    root = fields.Function(lambda tip: tip.root.hex(), required=True,
                           metadata={"description": "Merkle root over every entry (hex)"})


class ReversalSchema(RequestSchema):
    memo = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MEMO_CHARS),
                         metadata={"description": "why the entry is reversed"})


@blueprint.route("/head", methods=["GET"])
@blueprint.response(200, HeadSchema)
def get_head(programme: str):
    """The chain's size, last hash and Merkle root."""
    require_staff(programme, STAFF_ROLES)
    return head(engine(), programme)


@blueprint.route(f"/entries/<int(max={MAX_SEQ}):seq>", methods=["GET"])
@blueprint.response(200, EntrySchema)
def read_entry(programme: str, seq: int):
    """The entry at `seq`, as recorded (a member key: only entries posting to its account)."""
    caller = require_programme(programme)
    if caller.kind != "member":
        require_staff(programme, STAFF_ROLES)
        return get_entry(engine(), programme, seq)
    entry = get_entry(engine(), programme, seq)
    own = member_account(caller.holder.principal)
    if all(posting.account != own for posting in entry.postings):
        raise ApiProblem("forbidden", f"entry {seq} does not post to {own}; a member key reads "
                         "only entries posting to its own account")
    return entry


@blueprint.route(f"/entries/<int(max={MAX_SEQ}):seq>/reversal", methods=["POST"])
@idempotent
@blueprint.arguments(ReversalSchema)
@blueprint.response(201, EntrySchema, description="the reversal, posted")
@blueprint.alt_response(200, schema=EntrySchema,
                        description="the reversal posted earlier under the same Idempotency-Key")
def reverse_entry(body: dict, programme: str, seq: int):
    """Reverse an award or deduction: post its postings negated, naming it and saying why."""
    caller = require_staff(programme, REVERSING_ROLES)
    appended = reverse_award(engine(), programme, seq, actor=caller.actor, memo=body["memo"],
                             idempotency_key=ledger_key())
    return appended.entry, 201 if appended.created else 200
