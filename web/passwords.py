"""Password hashes: argon2id, memory-hard, through argon2-cffi.

Why argon2id and not the standard library's `hashlib.scrypt`: both are
memory-hard, but argon2id is the first choice of OWASP's password storage
guidance and of RFC 9106, its hashes are self-describing PHC strings
(`$argon2id$v=19$m=65536,t=3,p=4$…`) that carry their own parameters, so
`needs_rehash` can raise the cost later and old hashes keep verifying; and
argon2-cffi was already installed with pyseto.

The parameters are OWASP's recommended minimum for argon2id: 19 MiB of
memory, two passes, one lane. RFC 9106's profile (argon2-cffi's default,
64 MiB and three passes over four lanes) took 0.5-0.7 s a hash on the
two-core machines this runs on, which every sign-in and every test would
pay; OWASP's takes about 0.1 s there and still makes each offline guess
cost 19 MiB of memory. Raising them later is safe: a hash made with weaker
parameters is replaced at its next successful sign-in (`needs_rehash`).

API keys are not hashed like this (ledger/keys.py): their secrets are random
and long, so a fast hash of them gives nothing to guess; passwords are
chosen by people.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 200
"""Longer passwords add nothing and would let a request make the hash work on megabytes."""


MEMORY_KIB = 19 * 1024
PASSES = 2
LANES = 1


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=PASSES, memory_cost=MEMORY_KIB, parallelism=LANES)


def hash_password(password: str) -> str:
    """The PHC string to store for `password` (a new random salt each time)."""
    return _hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Does `password` match `stored_hash`? Takes as long whether it does or not."""
    try:
        return _hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Was `stored_hash` made with weaker parameters than today's?"""
    return _hasher().check_needs_rehash(stored_hash)


def spend_the_time_of_a_check(password: str) -> None:
    """Verify against a throwaway hash, so an unknown username answers as slowly as a
    known one and the time taken does not tell which usernames exist."""
    verify_password(_throwaway_hash(), password)


@functools.cache
def _throwaway_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))
