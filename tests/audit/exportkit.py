"""A synthetic export directory (docs/FORMAT.md §7), written without a database.

For the offline verifier's tests and benchmark: `ExportBuilder` appends
entries as the ledger's services would (rule versions as admin entries,
awards and deductions under them, reversals, voucher moves), signs
checkpoints with `audit.note`, and writes every file of the directory,
consistency proofs included, so the verifier can be tested on its own and
each tamper made on a known-good export. It enforces nothing: an award over
its cap is written as asked, which is what the tamper tests need.

Entries stream to entries.jsonl as they are appended and only their leaf
hashes stay in memory (32 bytes each), so the benchmark can build millions.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audit import note
from ledger.canonical import node_hash
from ledger.entry_format import entry_bytes, entry_hash, format_timestamp
from ledger.merkle import Frontier, consistency_proof

PROGRAMME = "xingfu-village"
ORIGIN_PREFIX = "jifen-test"
SYSTEM_ACCOUNTS = ("expired", "issuance", "penalty", "settled")
HELD = "held"
REVERSIBLE_WINDOW = 100_000
"""How far back `reverse` can reach: the builder forgets older postings."""
CSV_COLUMNS = ("seq", "recorded_at", "occurred_at", "kind", "rule", "rule_version", "quantity",
               "account", "points", "actor", "approver", "memo", "evidence", "reverses",
               "idempotency_key", "hash")


def json_line(value: Any) -> bytes:
    """A JSON file's bytes as §7 writes them: sorted keys, no whitespace, UTF-8, one LF."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")
                      ).encode("utf-8") + b"\n"


def rule_definition(code: str, *, sign: str = "award", points: int | None = 5,
                    per_unit: dict[str, Any] | None = None, caps: Sequence[dict] = (),
                    cooldown_minutes: int = 0, evidence_required: bool = False,
                    approval: str = "never", approval_above_points: int | None = None,
                    scope: str | None = None, in_force_from: str | None = None,
                    in_force_until: str | None = None, name: str | None = None) -> dict[str, Any]:
    """A definition as `ledger.rules.Rule.as_json` records it in the chain."""
    return {
        "code": code, "name": name or code, "category": "community", "description": "",
        "sign": sign, "points": None if per_unit else points,
        "per_unit": None if per_unit is None else {"max_quantity": None, "per": 1, **per_unit},
        "scope": scope,
        "caps": [{"per": "member", "max_points": None, "max_times": None, **cap} for cap in caps],
        "cooldown_minutes": cooldown_minutes, "evidence_required": evidence_required,
        "approval": approval, "approval_above_points": approval_above_points,
        "roles": ["organiser"], "in_force_from": in_force_from, "in_force_until": in_force_until,
    }


class ExportBuilder:
    """Appends entries to one programme's chain and writes its export directory."""

    def __init__(self, directory: Path, programme: str = PROGRAMME,
                 time_zone: str = "Asia/Shanghai", signer: note.Signer | None = None,
                 start: datetime = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)) -> None:
        self.root = Path(directory)
        self.programme = programme
        self.time_zone = time_zone
        self.signer = signer or note.new_signer(f"{ORIGIN_PREFIX}/{programme}")
        self.vkeys = [self.signer.verifier.vkey]
        self.clock = start
        self.units: list[dict[str, Any]] = []
        self.households: list[dict[str, Any]] = []
        self.members: list[dict[str, Any]] = []
        self.accounts: dict[str, dict[str, Any]] = {
            code: {"code": code, "kind": "system", "member": None} for code in SYSTEM_ACCOUNTS}
        self.balances: dict[str, list[int]] = {code: [0, 0] for code in SYSTEM_ACCOUNTS}
        self.rules: list[dict[str, Any]] = []
        self.rule_versions: dict[str, int] = {}
        self.definitions: dict[tuple[str, int], dict[str, Any]] = {}
        self.leaves = bytearray()
        self.frontier = Frontier()
        self.last_hash: bytes | None = None
        self.kinds: list[str] = []
        """Kind of every entry, for reversals' effect on scores."""
        self.postings: OrderedDict[int, list[tuple[str, int]]] = OrderedDict()
        """Postings of the last `REVERSIBLE_WINDOW` entries, for reversals."""
        self.checkpoints: list[tuple[int, bytes, str]] = []
        self.directory = self.root / programme
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lines = (self.directory / "entries.jsonl").open("wb")
        self._csv_file = (self.directory / "entries.csv").open("w", encoding="utf-8-sig",
                                                                newline="")
        self._csv = csv.writer(self._csv_file, lineterminator="\r\n")
        self._csv.writerow(CSV_COLUMNS)

    @property
    def size(self) -> int:
        return self.frontier.size

    # -- organisation ------------------------------------------------------------------

    def add_unit(self, code: str, name: str, parent: str | None = None,
                 kind: str = "village") -> None:
        self.units.append({"code": code, "name": name, "kind": kind, "parent": parent})

    def add_household(self, code: str, unit: str, name: str | None = None) -> None:
        self.households.append({"code": code, "name": name or code, "unit": unit})

    def add_member(self, code: str, household: str, name: str = "张三",
                   unit: str | None = None) -> str:
        unit = unit or next(h["unit"] for h in self.households if h["code"] == household)
        self.members.append({"code": code, "name": name, "household": household, "unit": unit})
        return self.add_account(f"member:{code}", "member", member=code)

    def add_account(self, code: str, kind: str, member: str | None = None) -> str:
        self.accounts[code] = {"code": code, "kind": kind, "member": member}
        self.balances[code] = [0, 0]
        return code

    # -- entries -----------------------------------------------------------------------

    def tick(self, minutes: int = 1) -> datetime:
        self.clock += timedelta(minutes=minutes)
        return self.clock

    def append(self, kind: str, postings: Iterable[tuple[str, int]], *,
               actor: str = "organiser:li-hua", occurred_at: datetime | None = None,
               memo: str = "", metadata: dict[str, Any] | None = None,
               evidence: str | None = None, idempotency_key: str | None = None,
               reverses: int | None = None, rule: dict[str, Any] | None = None,
               approver: str | None = None, recorded_at: datetime | None = None) -> int:
        """Append one entry as given; returns its seq.

        `recorded_at` defaults to the builder's clock, a minute on per entry.
        """
        recorded = recorded_at or self.tick()
        postings = list(postings)
        seq = self.size
        fields = {
            "programme": self.programme, "seq": seq, "prev_hash": self.last_hash, "kind": kind,
            "postings": postings, "actor": actor,
            "occurred_at": format_timestamp(occurred_at or recorded),
            "recorded_at": format_timestamp(recorded), "evidence": evidence, "memo": memo,
            "metadata": metadata or {}, "idempotency_key": idempotency_key,
            "reverses": reverses, "rule": rule, "approver": approver}
        body = entry_bytes(**fields)
        leaf = entry_hash(body)
        self._lines.write(body + b"\n")
        self.leaves += leaf
        self.frontier.append(leaf)
        self.last_hash = leaf
        moves_score = kind in ("award", "deduction") or (
            kind == "reversal" and self.kinds[reverses] in ("award", "deduction"))
        for account, points in postings:
            figures = self.balances[account]
            figures[0] += points
            if moves_score and self.accounts[account]["kind"] == "member":
                figures[1] += points
        self.kinds.append(kind)
        self.postings[seq] = postings
        if len(self.postings) > REVERSIBLE_WINDOW:
            self.postings.popitem(last=False)
        self._csv_rows(fields, leaf)
        return seq

    def define_rule(self, definition: dict[str, Any], actor: str = "admin:wu-min",
                    recorded_at: datetime | None = None) -> int:
        """Record the next version of a rule as an admin entry; returns the version."""
        code = definition["code"]
        version = self.rule_versions.get(code, 0) + 1
        seq = self.append("admin", [], actor=actor, recorded_at=recorded_at,
                          memo=f"rule {code} version {version}: {definition['name']}",
                          metadata={"event": "rule_version", "rule": definition,
                                    "version": version},
                          idempotency_key=f"rule:{code}:v{version}")
        self.rule_versions[code] = version
        self.definitions[(code, version)] = definition
        self.rules.append({"code": code, "version": version, "entry_seq": seq,
                           "definition": definition})
        return version

    def award(self, member: str, rule: str, *, quantity: int | None = None,
              points: int | None = None, version: int | None = None,
              occurred_at: datetime | None = None, evidence: str | None = None,
              approver: str | None = None, memo: str = "参加村民代表大会",
              actor: str = "organiser:li-hua", recorded_at: datetime | None = None,
              idempotency_key: str | None = None) -> int:
        """An award or deduction under `rule` (its newest version unless `version` says).

        `points` (a magnitude) defaults to what the definition gives; the sign
        and the other posting follow the rule's sign.
        """
        version = version or self.rule_versions[rule]
        definition = self.definitions[(rule, version)]
        if points is None:
            per_unit = definition["per_unit"]
            points = definition["points"] if per_unit is None else \
                quantity * per_unit["points"] // per_unit["per"]
        account = f"member:{member}"
        if definition["sign"] == "award":
            kind, postings = "award", [(account, points), ("issuance", -points)]
        else:
            kind, postings = "deduction", [(account, -points), ("penalty", points)]
        return self.append(kind, postings, actor=actor, occurred_at=occurred_at, memo=memo,
                           evidence=evidence, approver=approver, recorded_at=recorded_at,
                           rule={"code": rule, "quantity": quantity, "version": version},
                           idempotency_key=idempotency_key or f"sheet-{self.size}")

    def reverse(self, seq: int, memo: str = "录入错误", actor: str = "reviewer:zhao-gang",
                recorded_at: datetime | None = None) -> int:
        return self.append("reversal", [(account, -points)
                                        for account, points in self.postings[seq]],
                           actor=actor, memo=memo, reverses=seq, recorded_at=recorded_at)

    def checkpoint(self) -> int:
        """Sign a checkpoint of the chain as it is now; returns its size."""
        root = self.frontier.root()
        text = note.Checkpoint(self.signer.name, self.size, root).text()
        self.checkpoints.append((self.size, root, note.sign(text, self.signer)))
        return self.size

    # -- writing the directory ------------------------------------------------------------

    def finish(self, from_seq: int = 0, to_seq: int | None = None) -> Path:
        """Write every file; entries `from_seq`..`to_seq` (a range export unless all)."""
        self._lines.close()
        self._csv_file.close()
        last = self.size - 1 if to_seq is None else to_seq
        whole = from_seq == 0 and last == self.size - 1
        directory = self.directory
        if not whole:
            self._cut(from_seq, last)
        self._write("programme.json", {
            "code": self.programme, "name": "幸福村积分", "time_zone": self.time_zone,
            "notice_days": 7, "expiry_policy": "none", "created_at": "2026-11-01T00:00:00.000000Z"})
        self._write("organisation.json", {
            "units": self.units,
            "households": sorted(self.households, key=lambda h: h["code"]),
            "members": sorted(self.members, key=lambda m: m["code"])})
        self._write("accounts.json", [self.accounts[code] for code in sorted(self.accounts)])
        self._write("rules.json", [rule for rule in self.rules if rule["entry_seq"] <= last])
        if whole:
            self._write("balances.json", {"size": self.size, "accounts": {
                code: {"balance": balance, "score": score}
                for code, (balance, score) in sorted(self.balances.items())}})
        else:
            frontier = Frontier()
            for offset in range(0, from_seq * 32, 32):
                frontier.append(bytes(self.leaves[offset:offset + 32]))
            data = frontier.to_bytes()
            self._write("start.json", {
                "size": from_seq, "prev": self._leaf(from_seq - 1).hex(),
                "frontier": [data[i:i + 32].hex() for i in range(0, len(data), 32)]})
        checkpoints = self._checkpoint_lines(from_seq, last + 1)
        (directory / "checkpoints.jsonl").write_bytes(b"".join(map(json_line, checkpoints)))
        (directory / "vkeys.txt").write_text("".join(f"{vkey}\n" for vkey in self.vkeys))
        self.write_manifest(from_seq, last, len(checkpoints))
        return self.root

    def write_manifest(self, from_seq: int, to_seq: int, checkpoints: int) -> None:
        """manifest.json from the files as they are now (tamper tests call it again)."""
        files = {}
        for path in sorted(self.directory.iterdir()):
            data = path.read_bytes()
            files[path.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        frontier = self.frontier
        if to_seq != self.size - 1:
            frontier = Frontier()
            for seq in range(to_seq + 1):
                frontier.append(self._leaf(seq))
        head = self._leaf(to_seq).hex() if to_seq >= from_seq else None
        (self.root / "manifest.json").write_bytes(json_line({
            "format": "jifen-export", "version": 1, "programmes": [{
                "code": self.programme, "from_seq": from_seq, "to_seq": to_seq,
                "entries": to_seq - from_seq + 1, "head_hash": head,
                "root": frontier.root().hex(), "checkpoints": checkpoints, "files": files}]}))

    def _leaf(self, seq: int) -> bytes:
        return bytes(self.leaves[seq * 32:seq * 32 + 32])

    def _write(self, name: str, value: Any) -> None:
        (self.directory / name).write_bytes(json_line(value))

    def _cut(self, from_seq: int, last: int) -> None:
        path = self.directory / "entries.jsonl"
        lines = path.read_bytes().splitlines(keepends=True)[from_seq:last + 1]
        path.write_bytes(b"".join(lines))
        table = self.directory / "entries.csv"
        rows = list(csv.reader(io.StringIO(table.read_text(encoding="utf-8-sig"))))
        with table.open("w", encoding="utf-8-sig", newline="") as output:
            csv.writer(output, lineterminator="\r\n").writerows(
                [rows[0]] + [row for row in rows[1:] if from_seq <= int(row[0]) <= last])

    def _checkpoint_lines(self, from_seq: int, end_size: int) -> list[dict[str, Any]]:
        stored = [c for c in self.checkpoints if c[0] <= end_size]
        below = [c for c in stored if c[0] < from_seq]
        kept = below[-1:] + [c for c in stored if c[0] >= from_seq]
        tree = _LevelTree(self.leaves) if kept else None
        lines = []
        previous = None
        for size, _, signed in kept:
            proof = consistency_proof(previous, size, tree.get_node) if previous else []
            lines.append({"consistency": [node.hex() for node in proof], "from_size": previous,
                          "note": signed, "size": size})
            previous = size
        return lines

    def _csv_rows(self, entry: dict[str, Any], leaf: bytes) -> None:
        rule = entry["rule"]
        shared = [entry["seq"], entry["recorded_at"], entry["occurred_at"], entry["kind"],
                  rule["code"] if rule else "", rule["version"] if rule else "",
                  "" if not rule or rule["quantity"] is None else rule["quantity"]]
        after = [entry["actor"], entry["approver"] or "", entry["memo"], entry["evidence"] or "",
                 "" if entry["reverses"] is None else entry["reverses"],
                 entry["idempotency_key"] or "", leaf.hex()]
        for account, points in entry["postings"] or [("", "")]:
            self._csv.writerow([*shared, account, points, *after])


class _LevelTree:
    """Every perfect node of the tree over packed 32-byte leaves, level by level (bytes)."""

    def __init__(self, leaves: bytes | bytearray) -> None:
        level = bytes(leaves)
        self.levels = [level]
        while len(level) > 32:
            level = b"".join(node_hash(level[i:i + 32], level[i + 32:i + 64])
                             for i in range(0, len(level) - 63, 64))
            self.levels.append(level)

    def get_node(self, level: int, index: int) -> bytes:
        return self.levels[level][index * 32:index * 32 + 32]
