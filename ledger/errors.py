"""Domain errors of the ledger.

Every refusal is a `LedgerError` with a stable, machine-readable `code`
(`unbalanced_postings`, `idempotency_conflict`, ...) and a message a person
can act on. The HTTP layer maps codes to problem details in one place; the
CLI prints the message and exits non-zero. Codes never change once released:
clients branch on them.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base of every refusal the ledger can give; nothing was written."""

    code = "ledger_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class InvalidEntry(LedgerError):
    """A field of a proposed entry is malformed; `details['field']` names it."""

    code = "invalid_entry"


class InvalidAmount(InvalidEntry):
    """A posting amount is not an integer, is zero, or is out of range."""

    code = "invalid_amount"


class UnbalancedPostings(InvalidEntry):
    """The postings of one entry do not sum to zero (double entry)."""

    code = "unbalanced_postings"


class UnknownKind(InvalidEntry):
    """The entry kind is not one the ledger knows."""

    code = "unknown_kind"


class UnknownProgramme(LedgerError):
    code = "unknown_programme"


class UnknownAccount(LedgerError):
    code = "unknown_account"


class UnknownEntry(LedgerError):
    code = "unknown_entry"


class UnknownMember(LedgerError):
    code = "unknown_member"


class UnknownUnit(LedgerError):
    code = "unknown_unit"


class UnknownHousehold(LedgerError):
    code = "unknown_household"


class AlreadyExists(LedgerError):
    """A programme, unit, member or account with that code already exists."""

    code = "already_exists"


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before for different content."""

    code = "idempotency_conflict"


class AlreadyReversed(LedgerError):
    code = "already_reversed"


class NotReversible(LedgerError):
    """Reversals and admin entries cannot themselves be reversed."""

    code = "not_reversible"


class DatabaseNotEmpty(LedgerError):
    code = "database_not_empty"


class StorageBusy(LedgerError):
    """The database stayed locked past the busy timeout; retrying is safe."""

    code = "storage_busy"


class AppendOnlyViolation(LedgerError):
    """Something tried to UPDATE or DELETE an entry or posting."""

    code = "append_only"


class IntegrityViolation(LedgerError):
    """A database constraint refused a write that Python checks let through."""

    code = "integrity_violation"
