"""The offline verifier against a bare SHA-256 loop over the same lines, and its peak memory.

    .venv/bin/python benchmarks/verifier.py [--entries N ...] [--workers W] [--rounds R]
                                            [--keep] [--json FILE]

For each size (default 1,000,000 and 4,000,000 entries) it writes a
synthetic export under /tmp (`tests/audit/exportkit.py`: no database) that
looks like a large programme: a town of 50 villages, 5,000 households,
20,000 members; six rules (fixed and per-hour, one deduction, caps per
member per day and week and per household per week, a 24-hour cooldown,
evidence and approval), a new version of one rule halfway; Chinese memos;
every 500th entry a reversal, every 200th a voucher issued and redeemed at a
shop, settlements; a signed checkpoint every eighth of the way. Lines
average about 500 bytes. Every entry follows its rule, so the export
verifies.

Then, in turns (`--rounds`, default 3): the bare loop, one process reading
entries.jsonl line by line and computing `SHA-256(0x00 || line)` (exactly
the hashing the verifier must do, and nothing else); the same hashing over
lines already in memory (the hashing alone); and the verifier, run as
`python -m audit.verify DIR --vkey ...` in a subprocess. It prints the
median entries/s of each, the verifier's ratio to both, and its peak
resident memory (`getrusage(RUSAGE_CHILDREN).ru_maxrss` over the
subprocess and its workers, each run in a fresh child of this process).
`--directory` keeps the generated export there and reuses it next time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.audit.exportkit import ExportBuilder, rule_definition  # noqa: E402

MEMBERS = 20_000
HOUSEHOLD_SIZE = 4
VILLAGES = 50
ENTRIES_PER_DAY = 5_000
"""Fewer than MEMBERS: within a day every member appears at most once."""
MEMOS = (
    "参加村民代表大会并发言，提出修缮村道的建议",
    "志愿服务：清扫村道、清理河道垃圾，时长以签到表为准",
    "垃圾分类示范户，入户检查合格",
    "协助网格员开展独居老人走访，送去米面油",
    "调解邻里纠纷，双方已签字确认",
    "参加义务献血活动",
    "乱扔垃圾，经网格员劝导后仍未改正",
)
SHOPS = ("shop:xingfu-store", "shop:qingshui-supermarket")


def build(directory: Path, entries: int) -> list[str]:
    """Write the export of `entries` entries; returns its vkeys."""
    start = datetime(2025, 12, 28, 16, 0, tzinfo=UTC)  # Monday 2025-12-29 00:00 in Shanghai
    builder = ExportBuilder(directory, start=start)
    builder.add_unit("qingshui-town", "清水镇", kind="town")
    for village in range(VILLAGES):
        builder.add_unit(f"village-{village:02d}", f"第{village + 1}村", "qingshui-town")
    members = []
    for number in range(MEMBERS):
        household = f"h{number // HOUSEHOLD_SIZE:05d}"
        if number % HOUSEHOLD_SIZE == 0:
            builder.add_household(household, f"village-{number // HOUSEHOLD_SIZE % VILLAGES:02d}")
        members.append(f"m{number:05d}")
        builder.add_member(members[-1], household, name="张" + "伟芳明丽强"[number % 5])
    builder.add_account("held", "hold")
    for shop in SHOPS:
        builder.add_account(shop, "shop")
    builder.define_rule(rule_definition(
        "meeting", points=5, caps=[{"period": "week", "max_times": 1}], name="村民大会"))
    builder.define_rule(rule_definition(
        "volunteer-hours", per_unit={"unit": "minute", "points": 5, "per": 60,
                                     "max_quantity": 480},
        caps=[{"period": "day", "max_points": 40}], name="志愿服务"))
    builder.define_rule(rule_definition(
        "garbage-sorting", points=2, caps=[{"per": "household", "period": "week",
                                             "max_times": 7}], name="垃圾分类"))
    builder.define_rule(rule_definition(
        "inspection", points=10, evidence_required=True, cooldown_minutes=24 * 60,
        name="入户检查"))
    builder.define_rule(rule_definition("good-deed", points=20, approval="always",
                                        name="好人好事"))
    builder.define_rule(rule_definition("litter", sign="deduction", points=5, name="乱扔垃圾"))
    checkpoint_every = max(entries // 8, 1)
    number = 0
    while builder.size < entries:
        number += 1
        day, slot = divmod(number, ENTRIES_PER_DAY)
        member_number = number * 7919 % MEMBERS
        member = members[member_number]
        occurred = start + timedelta(days=day, hours=1, seconds=member_number % 28_000)
        recorded = start + timedelta(days=day, hours=9, microseconds=slot * 6_000_000)
        memo = MEMOS[number % len(MEMOS)] + f"（第{number % 97 + 1}组）"
        if builder.size == entries // 2:
            builder.define_rule(rule_definition(
                "meeting", points=6, caps=[{"period": "week", "max_times": 1}],
                name="村民大会"), recorded_at=recorded)
        elif number % 500 == 0 and builder.kinds[-3] in ("award", "deduction"):
            builder.reverse(builder.size - 3, recorded_at=recorded)
        elif number % 200 == 0:
            _voucher(builder, member, number, recorded)
        elif number % 2000 == 1:
            _settle(builder, recorded)
        elif day % 7 == member_number % 7:
            rule = "meeting" if number % 2 else "garbage-sorting"
            builder.award(member, rule, occurred_at=occurred, memo=memo, recorded_at=recorded,
                          idempotency_key=f"sheet-{day}-{slot}")
        else:
            choice = number % 10
            if choice < 6:
                builder.award(member, "volunteer-hours", quantity=30 + number % 451,
                              occurred_at=occurred, memo=memo, recorded_at=recorded,
                              idempotency_key=f"sheet-{day}-{slot}")
            elif choice < 8:
                evidence = "sha256:" + hashlib.sha256(f"photo-{number}".encode()).hexdigest()
                builder.award(member, "inspection", occurred_at=occurred, memo=memo,
                              evidence=evidence, recorded_at=recorded)
            elif choice == 8:
                builder.award(member, "good-deed", occurred_at=occurred, memo=memo,
                              approver="reviewer:zhao-gang", recorded_at=recorded)
            else:
                builder.award(member, "litter", occurred_at=occurred, memo=MEMOS[-1],
                              recorded_at=recorded)
        if builder.size % checkpoint_every == 0:
            builder.checkpoint()
    if builder.checkpoints[-1][0] != builder.size:
        builder.checkpoint()
    builder.finish()
    return builder.vkeys


def _voucher(builder: ExportBuilder, member: str, number: int, recorded: datetime) -> None:
    points = 10 + number % 40
    builder.append("voucher_issue", [(f"member:{member}", -points), ("held", points)],
                   actor="system:vouchers", memo="兑换券：食用油一桶",
                   metadata={"lots": [[number, points]], "voucher": number},
                   recorded_at=recorded, idempotency_key=f"voucher-issue:{number}")
    builder.append("voucher_redeem", [("held", -points), (SHOPS[number % 2], points)],
                   actor="shop:xingfu-store", memo="核销", metadata={"shop": "xingfu-store",
                                                                  "voucher": number},
                   recorded_at=recorded, idempotency_key=f"voucher-redeem:{number}")


def _settle(builder: ExportBuilder, recorded: datetime) -> None:
    for shop in SHOPS:
        owed = builder.balances[shop][0]
        if owed > 0:
            builder.append("settlement", [(shop, -owed), ("settled", owed)],
                           actor="admin:wu-min", memo="月度结算",
                           metadata={"shop": shop}, recorded_at=recorded)


def bare_loop(path: Path) -> tuple[int, float]:
    """Read the file line by line and hash each line as a leaf; (lines, seconds)."""
    sha256 = hashlib.sha256
    count = 0
    started = time.perf_counter()
    with open(path, "rb") as lines:
        for line in lines:
            sha256(b"\x00" + line[:-1]).digest()
            count += 1
    return count, time.perf_counter() - started


def hash_only(path: Path) -> float:
    """Seconds to hash every line as a leaf, the lines already in memory (in chunks)."""
    sha256 = hashlib.sha256
    seconds = 0.0
    with open(path, "rb") as file:
        while lines := file.readlines(64 << 20):
            started = time.perf_counter()
            for line in lines:
                sha256(b"\x00" + line[:-1]).digest()
            seconds += time.perf_counter() - started
    return seconds


def run_verifier(directory: Path, vkeys: list[str], workers: int | None) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of one verifier run in a fresh child process."""
    measure = (
        "import resource, subprocess, sys, time\n"
        "started = time.perf_counter()\n"
        "status = subprocess.run(sys.argv[1:]).returncode\n"
        "elapsed = time.perf_counter() - started\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(status, elapsed, peak)\n"
    )
    command = [sys.executable, "-m", "audit.verify", str(directory), "--quiet"]
    for vkey in vkeys:
        command += ["--vkey", vkey]
    if workers is not None:
        command += ["--workers", str(workers)]
    output = subprocess.run([sys.executable, "-c", measure, *command], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    status, elapsed, peak = int(output[-3]), float(output[-2]), int(output[-1])
    if status != 0:
        raise SystemExit(f"the verifier refused the benchmark export (exit {status})")
    return elapsed, peak


def measure(entries: int, rounds: int, workers: int | None,
            directory: Path | None) -> dict[str, object]:
    kept = directory is not None
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix=f"jifen-verify-bench-{entries}-", dir="/tmp"))
    try:
        vkeys_file = directory / "vkeys.pinned"
        started = time.perf_counter()
        if not vkeys_file.exists():
            vkeys_file.write_text("\n".join(build(directory, entries)) + "\n")
        built = time.perf_counter() - started
        vkeys = vkeys_file.read_text().split()
        lines = directory / "xingfu-village" / "entries.jsonl"
        size = lines.stat().st_size
        bare, hashing, verifier, peaks = [], [], [], []
        for _ in range(rounds):
            count, seconds = bare_loop(lines)
            bare.append(count / seconds)
            hashing.append(count / hash_only(lines))
            seconds, peak = run_verifier(directory, vkeys, workers)
            verifier.append(count / seconds)
            peaks.append(peak)
        return {
            "entries": count, "bytes": size, "average_line_bytes": round(size / count - 1),
            "build_seconds": round(built, 1), "bare_entries_per_s": round(statistics.median(bare)),
            "hash_only_entries_per_s": round(statistics.median(hashing)),
            "verifier_entries_per_s": round(statistics.median(verifier)),
            "ratio": round(statistics.median(verifier) / statistics.median(bare), 3),
            "ratios": [round(v / b, 3) for v, b in zip(verifier, bare, strict=True)],
            "ratio_to_hash_only": round(statistics.median(verifier)
                                        / statistics.median(hashing), 3),
            "peak_rss_mib": round(max(peaks) / 1024, 1), "workers": workers or os.cpu_count(),
        }
    finally:
        if not kept:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, action="append",
                        help="export size (repeatable; default 1,000,000 and 4,000,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--directory", type=Path,
                        help="where to keep the export (with one --entries); reused if there")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()
    sizes = arguments.entries or [1_000_000, 4_000_000]
    if arguments.directory is not None and len(sizes) != 1:
        parser.error("--directory goes with exactly one --entries")
    results = [measure(size, arguments.rounds, arguments.workers, arguments.directory)
               for size in sizes]
    print("| entries | bytes/line | bare loop (read + hash) | hashing only | verifier | "
          "ratio to the bare loop (per round) | ratio to hashing only | verifier peak RSS |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|")
    for result in results:
        print(f"| {result['entries']:,} | {result['average_line_bytes']} | "
              f"{result['bare_entries_per_s']:,}/s | {result['hash_only_entries_per_s']:,}/s | "
              f"{result['verifier_entries_per_s']:,}/s | "
              f"{result['ratio']} ({', '.join(map(str, result['ratios']))}) | "
              f"{result['ratio_to_hash_only']} | {result['peak_rss_mib']} MiB |")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
