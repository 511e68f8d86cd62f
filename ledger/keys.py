"""API keys: shown once at creation, stored only as a SHA-256 of the secret.

A key reads `jf_<prefix>_<secret>`. The prefix (public, 10 characters) names
the key in lists and logs and finds its row; the secret (32 random bytes) is
never stored. SHA-256 suffices here, unlike for passwords: the secret is
random and long, so there is nothing to guess from its hash.

Kinds: `staff` keys act as a principal whose roles come from grants;
`member` keys read one resident's own data; `shop` keys belong to a partner
shop's scanning device; `operator` keys are the installation's operator,
with every role in every programme (actor `system:<label>`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from ledger import errors
from ledger.entry_format import format_timestamp
from ledger.models import ApiKey, Member, Programme
from ledger.organisation import SYSTEM_PREFIX
from ledger.storage import read_transaction, write_transaction

KINDS = ("staff", "member", "shop", "operator")
_KEY_PATTERN = re.compile(r"^jf_([a-z2-7]{10})_([A-Za-z0-9_-]{43})$")
_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


class InvalidKey(errors.LedgerError):
    """The key is malformed, unknown or revoked (the three are not told apart)."""

    code = "invalid_key"


class UnknownKey(errors.LedgerError):
    """No active key has that prefix (for revocation: not the caller's own credential)."""

    code = "unknown_key"


@dataclass(frozen=True)
class KeyHolder:
    """Who a verified key speaks for."""

    key_id: int
    prefix: str
    kind: str
    principal: str
    programme: str | None
    label: str

    @property
    def actor(self) -> str:
        """The name written in entries this key posts."""
        return f"{SYSTEM_PREFIX}{self.label}" if self.kind == "operator" else self.principal


@dataclass(frozen=True)
class NewKey:
    holder: KeyHolder
    secret: str
    """The whole key, `jf_<prefix>_<secret>`: shown once, never stored."""


def create_key(
    engine: Engine, *, kind: str, principal: str, label: str, programme: str | None = None,
    secret: str | None = None, prefix: str | None = None,
) -> NewKey:
    """Create a key and return it with its secret (the only time the secret exists).

    `programme` is required except for operator keys; a member key's
    principal must be a member code of that programme. `secret` is for the
    and `prefix` are for the demo only (fixed, documented credentials); real
    keys are random.
    Raises `InvalidEntry`, `UnknownProgramme`, `UnknownMember`.
    """
    if kind not in KINDS:
        raise errors.InvalidEntry(f"key kind must be one of {', '.join(KINDS)}", field="kind")
    for name, value in (("principal", principal), ("label", label)):
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise errors.InvalidEntry(f"{name} must be 1-200 characters", field=name)
    if kind != "operator" and programme is None:
        raise errors.InvalidEntry("a programme is required for this kind of key",
                                  field="programme")
    if kind == "staff" and principal.startswith(SYSTEM_PREFIX):
        raise errors.InvalidEntry(f"staff principals may not start with {SYSTEM_PREFIX}",
                                  field="principal")
    prefix = prefix or "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(10))
    secret = secret or secrets.token_urlsafe(32)
    whole = f"jf_{prefix}_{secret}"
    if not _KEY_PATTERN.match(whole):
        raise errors.InvalidEntry("a key secret must be 43 URL-safe base64 characters",
                                  field="secret")
    with write_transaction(engine) as connection:
        programme_id = None
        if programme is not None:
            programme_id = connection.execute(
                select(Programme.id).where(Programme.code == programme)
            ).scalar_one_or_none()
            if programme_id is None:
                raise errors.UnknownProgramme(f"no programme with code {programme!r}",
                                              programme=programme)
        if kind == "member":
            member = connection.execute(
                select(Member.id).where(Member.programme_id == programme_id,
                                        Member.code == principal)
            ).scalar_one_or_none()
            if member is None:
                raise errors.UnknownMember(f"no member {principal!r}", member=principal)
        key_id = connection.execute(
            insert(ApiKey)
            .values(programme_id=programme_id, prefix=prefix,
                    secret_sha256=hashlib.sha256(secret.encode()).digest(), kind=kind,
                    principal=principal, label=label,
                    created_at=format_timestamp(datetime.now(UTC)))
            .returning(ApiKey.id)
        ).scalar_one()
    return NewKey(KeyHolder(key_id, prefix, kind, principal, programme, label), whole)


def verify_key(engine: Engine, presented: str) -> KeyHolder:
    """Who `presented` belongs to; raises `InvalidKey` (malformed, unknown or revoked)."""
    match = _KEY_PATTERN.match(presented or "")
    if match is None:
        raise InvalidKey("the API key is malformed: expected jf_<prefix>_<secret>")
    prefix, secret = match.groups()
    with read_transaction(engine) as connection:
        row = connection.execute(
            select(ApiKey.id, ApiKey.secret_sha256, ApiKey.kind, ApiKey.principal,
                   Programme.code, ApiKey.label, ApiKey.revoked_at)
            .outerjoin(Programme, Programme.id == ApiKey.programme_id)
            .where(ApiKey.prefix == prefix)
        ).first()
    digest = hashlib.sha256(secret.encode()).digest()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(
        digest, row.secret_sha256
    ):
        raise InvalidKey("the API key is unknown or revoked")
    return KeyHolder(row.id, prefix, row.kind, row.principal, row.code, row.label)


def list_keys(engine: Engine, programme: str) -> list[tuple[KeyHolder, str, str | None]]:
    """Keys of a programme with their creation and revocation times; never secrets."""
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(ApiKey.id, ApiKey.prefix, ApiKey.kind, ApiKey.principal, Programme.code,
                   ApiKey.label, ApiKey.created_at, ApiKey.revoked_at)
            .join(Programme, Programme.id == ApiKey.programme_id)
            .where(Programme.code == programme)
            .order_by(ApiKey.id)
        ).all()
    return [(KeyHolder(*row[:6]), row.created_at, row.revoked_at) for row in rows]


def revoke_key(engine: Engine, prefix: str, programme: str | None = None) -> None:
    """Revoke a key from now on; raises `UnknownKey` if there is no such active key."""
    with write_transaction(engine) as connection:
        query = update(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        if programme is not None:
            query = query.where(ApiKey.programme_id == select(Programme.id).where(
                Programme.code == programme).scalar_subquery())
        revoked = connection.execute(
            query.values(revoked_at=format_timestamp(datetime.now(UTC)))
        ).rowcount
    if revoked != 1:
        raise UnknownKey(f"no active key with prefix {prefix!r}", prefix=prefix)
