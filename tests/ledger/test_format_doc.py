"""docs/FORMAT.md's worked example, checked against the code so the two cannot drift."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ledger.canonical import node_hash
from ledger.entry_format import entry_bytes, entry_hash

FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"


def block(marker: str) -> str:
    """The fenced block that follows `<!-- marker -->` in FORMAT.md."""
    text = FORMAT_DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {re.escape(marker)} -->\n```\w+\n(.*?)\n```", text, re.DOTALL)
    assert match, f"FORMAT.md has no block after <!-- {marker} -->"
    return match.group(1)


def example_zero_fields() -> dict:
    fields = json.loads(block("example-0-fields"))
    fields["postings"] = [tuple(pair) for pair in fields.pop("postings")]
    fields["prev_hash"] = fields.pop("prev")
    return fields


def test_example_entry_encodes_to_the_documented_bytes_and_hash():
    canonical = entry_bytes(**example_zero_fields())
    assert canonical == block("example-0-bytes").encode("utf-8")
    assert entry_hash(canonical).hex() == block("example-0-hash")
    assert hashlib.sha256(b"\x00" + canonical).hexdigest() == block("example-0-hash")


def test_example_reversal_links_to_the_first_entry_and_the_root_is_documented():
    first_hash = bytes.fromhex(block("example-0-hash"))
    fields = example_zero_fields() | {
        "seq": 1,
        "prev_hash": first_hash,
        "kind": "reversal",
        "postings": [("member:m-zhang-wei", -5), ("issuance", 5)],
        "occurred_at": "2026-11-03T02:20:00.000000Z",
        "recorded_at": "2026-11-03T02:20:00.000000Z",
        "memo": "录入错误",
        "metadata": {},
        "idempotency_key": "rev-1",
        "reverses": 0,
        "rule": None,
    }
    canonical = entry_bytes(**fields)
    assert canonical == block("example-1-bytes").encode("utf-8")
    second_hash = entry_hash(canonical)
    assert second_hash.hex() == block("example-1-hash")
    assert node_hash(first_hash, second_hash).hex() == block("example-root")


def test_documented_byte_count_matches():
    text = FORMAT_DOC.read_text(encoding="utf-8")
    documented = int(re.search(r"UTF-8; (\d+) bytes", text).group(1))
    assert documented == len(block("example-0-bytes").encode("utf-8"))
