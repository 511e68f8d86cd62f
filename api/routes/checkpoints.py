"""Signed checkpoints, their keys, and inclusion and consistency proofs.

What anyone may read, without a key (a witness, a newspaper, a resident's
phone): the checkpoints (each a C2SP signed note), the vkeys that verify
them, and consistency proofs between tree sizes, which show a later
checkpoint only appended to an earlier one. These reveal sizes and hashes,
nothing about any entry.

What needs a key: signing a checkpoint now (admin); an inclusion proof and
the `c2sp.org/tlog-proof@v1` file of one entry, which carries the entry
itself, so a member key gets them only for entries posting to its own
account, as for `GET /entries/{seq}`.
"""

from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import STAFF_ROLES, engine, require_programme, require_staff
from api.idempotency import idempotent
from api.problems import ApiProblem
from api.schemas import RequestSchema
from audit import checkpoints, proofs
from audit.proof_file import FILE_SUFFIX
from ledger.accounts import member_account
from ledger.chain import get_entry

blueprint = Blueprint("checkpoints", __name__, url_prefix="/programmes/<programme>",
                      description="Signing checkpoints; inclusion proofs of entries.")
public_blueprint = Blueprint("checkpoints_public", __name__, url_prefix="/programmes/<programme>",
                             description="Signed checkpoints, their vkeys and consistency "
                                         "proofs (no authentication).")

SIGNING_ROLES = ("admin",)
MAX_SIZE = 2**63 - 1
LATEST_MAX_AGE_SECONDS = 10
"""The latest checkpoint changes whenever one is signed: caches keep it only briefly."""
SIGNED_MAX_AGE_SECONDS = 86_400
"""A checkpoint at a given size never changes."""
NOTE_MIMETYPE = "text/plain"


class CheckpointSchema(Schema):
    size = fields.Integer(required=True, metadata={"description": "entries in the tree"})
    root = fields.String(required=True, metadata={"description": "Merkle root (hex)"})
    note = fields.String(required=True, metadata={
        "description": "the C2SP signed note (origin, size, base64 root; signatures)"})
    vkey = fields.String(required=True, metadata={"description": "the key that signed it"})
    signed_at = fields.String(required=True)


class CheckpointListQuerySchema(RequestSchema):
    after = fields.Integer(load_default=-1, validate=validate.Range(min=-1, max=MAX_SIZE),
                           metadata={"description": "only checkpoints of larger sizes"})
    limit = fields.Integer(load_default=100, validate=validate.Range(
        min=1, max=checkpoints.MAX_LIST_CHECKPOINTS))


class CheckpointListSchema(Schema):
    items = fields.List(fields.Nested(CheckpointSchema), required=True)
    next_after = fields.Integer(allow_none=True, required=True, metadata={
        "description": "pass as `after` for the next page; null on the last page"})


class CheckpointQuerySchema(RequestSchema):
    size = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_SIZE),
                          metadata={"description": "the checkpoint at this size (default: the "
                                                   "latest)"})


class CheckpointKeyQuerySchema(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(
        [checkpoints.SIGNING, checkpoints.RETIRED]), metadata={
        "description": "only keys in this state (absent: every key)"})


class CheckpointKeySchema(Schema):
    vkey = fields.String(required=True, metadata={"description": "signed-note verifier key"})
    status = fields.String(required=True, metadata={"description": "signing or retired"})
    created_at = fields.String(required=True)
    retired_at = fields.String(allow_none=True, required=True)


class CheckpointKeysSchema(Schema):
    keys = fields.List(fields.Nested(CheckpointKeySchema), required=True)


class InclusionQuerySchema(RequestSchema):
    seq = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_SIZE))
    size = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_SIZE),
                          metadata={"description": "tree size (default: the latest checkpoint)"})


class InclusionProofSchema(Schema):
    programme = fields.String(required=True)
    seq = fields.Integer(required=True)
    size = fields.Integer(required=True)
    leaf_hash = fields.String(required=True, metadata={"description": "the entry's hash (hex)"})
    proof = fields.List(fields.String(), required=True, metadata={
        "description": "RFC 9162 audit path, hex, from the leaf's sibling up"})
    root = fields.String(required=True, metadata={"description": "root at `size` (hex)"})
    checkpoint = fields.String(allow_none=True, required=True, metadata={
        "description": "the signed checkpoint at `size`; null if none was signed there"})


class ConsistencyQuerySchema(RequestSchema):
    old_size = fields.Integer(data_key="from", required=True,
                              validate=validate.Range(min=1, max=MAX_SIZE))
    new_size = fields.Integer(data_key="to", load_default=None,
                              validate=validate.Range(min=1, max=MAX_SIZE),
                              metadata={"description": "default: the latest checkpoint's size"})


class ConsistencyProofSchema(Schema):
    programme = fields.String(required=True)
    old_size = fields.Integer(required=True)
    new_size = fields.Integer(required=True)
    old_root = fields.String(required=True)
    new_root = fields.String(required=True)
    proof = fields.List(fields.String(), required=True, metadata={
        "description": "RFC 9162 consistency proof, hex"})
    old_checkpoint = fields.String(allow_none=True, required=True)
    new_checkpoint = fields.String(allow_none=True, required=True)


class ProofFileQuerySchema(RequestSchema):
    size = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_SIZE),
                          metadata={"description": "a checkpointed size (default: the latest)"})


@public_blueprint.route("/checkpoints", methods=["GET"])
@public_blueprint.arguments(CheckpointListQuerySchema, location="query", as_kwargs=True)
@public_blueprint.response(200, CheckpointListSchema)
@public_blueprint.doc(security=[])
def list_checkpoints(programme: str, after: int, limit: int):
    """Signed checkpoints in size order, a page at a time (public: no key needed)."""
    found = checkpoints.programme_checkpoints(engine(), programme, after_size=after,
                                              limit=limit)
    next_after = found[-1].size if len(found) == limit else None
    return {"items": [checkpoint.as_json() for checkpoint in found], "next_after": next_after}


@public_blueprint.route("/checkpoint", methods=["GET"])
@public_blueprint.arguments(CheckpointQuerySchema, location="query", as_kwargs=True)
@public_blueprint.response(200, {"type": "string"}, content_type=NOTE_MIMETYPE,
                           description="the signed note, as C2SP tlog-checkpoint")
@public_blueprint.doc(security=[])
def signed_note(programme: str, size: int | None):
    """The latest signed checkpoint (or the one at `size`) as a signed note, text/plain, as
    tlog-tiles serves `<prefix>/checkpoint` (public: no key needed)."""
    if size is None:
        signed = checkpoints.latest_signed(engine(), programme)
        cache = f"public, max-age={LATEST_MAX_AGE_SECONDS}"
    else:
        signed = checkpoints.checkpoint_at_size(engine(), programme, size)
        cache = f"public, max-age={SIGNED_MAX_AGE_SECONDS}, immutable"
    response = Response(signed.note, mimetype=NOTE_MIMETYPE)
    response.headers["Cache-Control"] = cache
    return response


@public_blueprint.route("/checkpoint-keys", methods=["GET"])
@public_blueprint.arguments(CheckpointKeyQuerySchema, location="query", as_kwargs=True)
@public_blueprint.response(200, CheckpointKeysSchema)
@public_blueprint.doc(security=[])
def checkpoint_keys(programme: str, status: str | None):
    """The vkeys that verify this programme's checkpoints, signing key first (public).

    Retired keys stay listed: they verify the checkpoints they signed.
    """
    return {"keys": [key.as_json() for key in checkpoints.published_keys(engine(), programme)
                     if status is None or key.status == status]}


@public_blueprint.route("/proofs/consistency", methods=["GET"])
@public_blueprint.arguments(ConsistencyQuerySchema, location="query", as_kwargs=True)
@public_blueprint.response(200, ConsistencyProofSchema)
@public_blueprint.doc(security=[])
def consistency_proof(programme: str, old_size: int, new_size: int | None):
    """Proof that the tree of `from` entries is a prefix of the tree of `to` (public).

    With the signed checkpoints at both sizes, anyone can check that the
    later one only appended to the earlier.
    """
    return proofs.consistency(engine(), programme, old_size, new_size).as_json()


@blueprint.route("/checkpoints", methods=["POST"])
@idempotent
@blueprint.response(200, CheckpointSchema, description="the checkpoint of the chain as it is")
def sign_checkpoint(programme: str):
    """Sign a checkpoint of the whole chain now (admin); returns the existing one if the
    latest checkpoint already covers the chain.

    Refused with `checkpoint_inconsistent` if the chain does not extend the
    checkpoint signed before, and `empty_chain` before the first entry.
    """
    require_staff(programme, SIGNING_ROLES)
    return checkpoints.sign_checkpoint(engine(), programme).as_json()


@blueprint.route("/proofs/inclusion", methods=["GET"])
@blueprint.arguments(InclusionQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, InclusionProofSchema)
def inclusion_proof(programme: str, seq: int, size: int | None):
    """Proof that entry `seq` is in the tree of `size` entries (staff; a member key only for
    entries posting to its own account)."""
    _require_entry_access(programme, seq)
    return proofs.inclusion(engine(), programme, seq, size).as_json()


@blueprint.route(f"/entries/<int(max={MAX_SIZE}):seq>/tlog-proof", methods=["GET"])
@blueprint.arguments(ProofFileQuerySchema, location="query", as_kwargs=True)
@blueprint.response(200, {"type": "string"}, content_type=NOTE_MIMETYPE,
                    description="a c2sp.org/tlog-proof@v1 file carrying the entry")
def entry_proof_file(programme: str, seq: int, size: int | None):
    """Entry `seq` with its inclusion proof and signed checkpoint, as a `.tlog-proof` file to
    keep and check offline with `jifen verify-proof` (staff; a member key for its own entries).
    """
    _require_entry_access(programme, seq)
    text = proofs.proof_file(engine(), programme, seq, size)
    response = Response(text, mimetype=NOTE_MIMETYPE)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{programme}-{seq}{FILE_SUFFIX}"')
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _require_entry_access(programme: str, seq: int) -> None:
    """Staff may see any entry's proof; a member key only proofs of its own entries."""
    caller = require_programme(programme)
    if caller.kind != "member":
        require_staff(programme, STAFF_ROLES)
        return
    own = member_account(caller.holder.principal)
    if all(posting.account != own for posting in get_entry(engine(), programme, seq).postings):
        raise ApiProblem("forbidden", f"entry {seq} does not post to {own}; a member key gets "
                         "proofs only of entries posting to its own account")
