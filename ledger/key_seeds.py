"""Ed25519 seeds kept in a key directory instead of the database.

Voucher signing keys (`redemption.signing_keys`) and checkpoint keys
(`audit.checkpoints`) keep their 32-byte seed here when
`JIFEN_SIGNING_KEY_DIR` names a directory: one file per key, created with
mode 0600 and never overwritten, so a database dump holds nothing that can
sign. Without the variable the caller keeps the seed in its database row.
"""

from __future__ import annotations

import os
from pathlib import Path

KEY_DIRECTORY_VARIABLE = "JIFEN_SIGNING_KEY_DIR"
SEED_BYTES = 32


class SeedUnavailable(Exception):
    """The seed's file cannot be read here; the message says why, for the caller's error."""


def write_seed(file_name: str, seed: bytes) -> Path | None:
    """Write `seed` to a new file in the key directory; None when no directory is set."""
    directory = os.environ.get(KEY_DIRECTORY_VARIABLE)
    if not directory:
        return None
    path = Path(directory) / file_name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as seed_file:
        seed_file.write(seed)
        seed_file.flush()
        os.fsync(seed_file.fileno())
    return path


def read_seed(file_name: str, what: str) -> bytes:
    """The seed in `file_name` of the key directory; `what` names the key in refusals."""
    directory = os.environ.get(KEY_DIRECTORY_VARIABLE)
    if not directory:
        raise SeedUnavailable(
            f"the seed of {what} is kept in a key directory; set {KEY_DIRECTORY_VARIABLE}")
    try:
        seed = (Path(directory) / file_name).read_bytes()
    except OSError as error:
        raise SeedUnavailable(f"cannot read the seed of {what}: {error.strerror}") from error
    if len(seed) != SEED_BYTES:
        raise SeedUnavailable(f"the seed file of {what} is not {SEED_BYTES} bytes")
    return seed
