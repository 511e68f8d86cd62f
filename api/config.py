"""Settings from the environment (documented in the README's Configuration table)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ledger.storage import DEFAULT_SQLITE_PATH, database_url

DEFAULT_EVIDENCE_DIR = DEFAULT_SQLITE_PATH.parent / "evidence"


@dataclass(frozen=True)
class Settings:
    database_url: str
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body; a sign-in sheet of 5,000 lines fits with room to spare."""
    log_level: str = "INFO"
    trust_proxy: bool = False
    """Honour X-Forwarded-For / -Proto from one reverse proxy in front."""
    evidence_dir: Path = field(default_factory=lambda: DEFAULT_EVIDENCE_DIR.resolve())
    """Where photos and sign-in sheets given as evidence are kept, named by their SHA-256."""

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            database_url=database_url(),
            max_body_bytes=int(os.environ.get("JIFEN_MAX_BODY_BYTES", 2 * 1024 * 1024)),
            log_level=os.environ.get("JIFEN_LOG_LEVEL", "INFO").upper(),
            trust_proxy=os.environ.get("JIFEN_TRUST_PROXY", "").lower() in {"1", "true", "yes"},
            evidence_dir=Path(os.environ.get("JIFEN_EVIDENCE_DIR") or DEFAULT_EVIDENCE_DIR
                              ).resolve(),
        )
