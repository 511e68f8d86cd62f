"""The exact shape of an entry's hashed body (docs/FORMAT.md, version 1).

Standard library only: the offline verifier reuses it. One function builds
the body from its fields; `ledger.canonical.encode_plain` turns it into the
RFC 8785 bytes, and the entry's hash is the RFC 6962 leaf hash of those bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ledger.canonical import encode_plain, leaf_hash

FORMAT_VERSION = 1
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""UTC, always six fractional digits: fixed width, so text order is time order."""


def format_timestamp(moment: datetime) -> str:
    """`moment` (time-zone aware) as the fixed-width UTC text that is hashed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must carry a time zone")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """The inverse of `format_timestamp`; refuses any other spelling."""
    moment = datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    if format_timestamp(moment) != text:
        raise ValueError(f"timestamp {text!r} is not in the canonical form")
    return moment


def entry_body(
    *,
    programme: str,
    seq: int,
    prev_hash: bytes | None,
    kind: str,
    postings: Iterable[tuple[str, int]],
    actor: str,
    occurred_at: str,
    recorded_at: str,
    evidence: str | None,
    memo: str,
    metadata: Mapping[str, Any],
    idempotency_key: str | None,
    reverses: int | None,
    rule: Mapping[str, Any] | None,
    approver: str | None,
) -> dict[str, Any]:
    """The JSON object whose canonical bytes are hashed; every key always present."""
    return {
        "actor": actor,
        "approver": approver,
        "evidence": evidence,
        "idempotency_key": idempotency_key,
        "kind": kind,
        "memo": memo,
        "metadata": metadata,
        "occurred_at": occurred_at,
        "postings": [{"account": account, "points": points} for account, points in postings],
        "prev": prev_hash.hex() if prev_hash is not None else None,
        "programme": programme,
        "recorded_at": recorded_at,
        "reverses": reverses,
        "rule": dict(rule) if rule is not None else None,
        "seq": seq,
        "v": FORMAT_VERSION,
    }


def entry_bytes(**fields: Any) -> bytes:
    """Canonical bytes of the body built from `fields` (see `entry_body`)."""
    return encode_plain(entry_body(**fields))


def entry_hash(canonical_bytes: bytes) -> bytes:
    """An entry's hash: its RFC 6962 leaf hash, SHA-256(0x00 || bytes)."""
    return leaf_hash(canonical_bytes)
