"""Proof generation on a chain of millions of entries: inclusion and consistency, median ms.

    .venv/bin/python benchmarks/proofs.py [--entries N] [--postgres-entries N]
                                          [--samples S] [--sqlite-only] [--json FILE]

For each database (a temporary SQLite file; a throwaway PostgreSQL database
on JIFEN_BENCH_POSTGRES_URL or the machine's server) it writes a chain of
`--entries` genuine entries (admin entries without postings: canonical
bytes, `prev` links and leaf hashes exactly as `ledger.chain` makes them, so
`jifen db verify` passes) straight into the entries table with executemany,
a few hundred thousand rows per transaction, much faster than appending
through `append_batch`, which is not what is measured here. It then times:

- the first checkpoint (`audit.checkpoints.sign_checkpoint`), which stores
  every tile node of the chain (`audit.tiles.ensure_nodes`) and signs;
- a second checkpoint after 1,000 more entries (the incremental cost);
- for `--samples` random entries and sizes, the median and 95th percentile of
  an inclusion proof and a consistency proof straight from the stored nodes
  on an open connection (`audit.tiles`), and of what the API serves
  (`audit.proofs`: its own transaction, the entry loaded and re-hashed, the
  checkpoint looked up), and of a whole tlog-proof file. Every proof is
  verified (untimed) against the signed checkpoint's root.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import sqlalchemy
from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import checkpoints, proofs, tiles  # noqa: E402
from audit.proof_file import verify_proof  # noqa: E402
from ledger import migrations  # noqa: E402
from ledger.entry_format import entry_bytes, entry_hash  # noqa: E402
from ledger.merkle import Frontier, verify_consistency, verify_inclusion  # noqa: E402
from ledger.models import ChainHead  # noqa: E402
from ledger.models import Entry as EntryRow  # noqa: E402
from ledger.programmes import create_programme  # noqa: E402
from ledger.storage import create_engine, insert_rows, read_transaction  # noqa: E402

ROWS_PER_INSERT = 50_000
ROWS_PER_TRANSACTION = 500_000
MORE_ENTRIES = 1_000
RECORDED_AT = "2026-11-30T08:00:00.000000Z"


class ChainWriter:
    """Writes genuine admin entries to one programme's chain, round `ledger.chain`."""

    def __init__(self, engine: sqlalchemy.Engine, code: str) -> None:
        self.engine = engine
        self.code = code
        self.programme_id = create_programme(engine, code, "proof benchmark").id
        self.frontier = Frontier()
        self.prev_hash: bytes | None = None

    def write(self, count: int) -> None:
        end = self.frontier.size + count
        while self.frontier.size < end:
            with self.engine.begin() as connection:
                stop = min(end, self.frontier.size + ROWS_PER_TRANSACTION)
                while self.frontier.size < stop:
                    rows = [self._row(seq) for seq in range(
                        self.frontier.size, min(stop, self.frontier.size + ROWS_PER_INSERT))]
                    insert_rows(connection, EntryRow.__table__, rows)
                connection.execute(
                    update(ChainHead).where(ChainHead.programme_id == self.programme_id)
                    .values(size=self.frontier.size, head_hash=self.prev_hash,
                            frontier=self.frontier.to_bytes(), updated_at=RECORDED_AT))

    def _row(self, seq: int) -> dict[str, object]:
        metadata = {"n": seq}
        data = entry_bytes(
            programme=self.code, seq=seq, prev_hash=self.prev_hash, kind="admin", postings=[],
            actor="system:bench", occurred_at=RECORDED_AT, recorded_at=RECORDED_AT,
            evidence=None, memo="", metadata=metadata, idempotency_key=None, reverses=None,
            rule=None, approver=None)
        leaf = entry_hash(data)
        row = {
            "programme_id": self.programme_id, "seq": seq, "kind": "admin",
            "actor": "system:bench", "occurred_at": RECORDED_AT, "recorded_at": RECORDED_AT,
            "evidence": None, "memo": "", "metadata_json": json.dumps(metadata),
            "idempotency_key": None, "content_digest": leaf, "reverses_seq": None,
            "rule_code": None, "rule_version": None, "rule_quantity": None, "approver": None,
            "prev_hash": self.prev_hash, "hash": leaf,
        }
        self.prev_hash = leaf
        self.frontier.append(leaf)
        return row


def timed(function: Callable[[], object], cpu: list[float] | None = None
          ) -> tuple[float, object]:
    """Wall milliseconds and the result; this process's CPU milliseconds go to `cpu`."""
    started, started_cpu = time.perf_counter(), time.process_time()
    result = function()
    if cpu is not None:
        cpu.append((time.process_time() - started_cpu) * 1000)
    return (time.perf_counter() - started) * 1000, result


def summary(milliseconds: list[float], cpu_milliseconds: list[float]) -> dict[str, float]:
    ordered = sorted(milliseconds)
    return {"median_ms": statistics.median(ordered),
            "p95_ms": ordered[int(len(ordered) * 0.95) - 1], "max_ms": ordered[-1],
            "median_cpu_ms": statistics.median(cpu_milliseconds)}


def run(url: str, entries: int, samples: int) -> dict[str, object]:
    engine = create_engine(url)
    migrations.upgrade(engine)
    code = f"proofs-{uuid.uuid4().hex[:8]}"
    writer = ChainWriter(engine, code)
    build_ms, _ = timed(lambda: writer.write(entries))
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    first_ms, first = timed(lambda: checkpoints.sign_checkpoint(engine, code))
    writer.write(MORE_ENTRIES)
    second_ms, second = timed(lambda: checkpoints.sign_checkpoint(engine, code))
    size = second.size
    roots = {first.size: first.root, size: second.root}

    chooser = random.Random(2026)
    names = ("inclusion, stored nodes", "consistency, stored nodes", "inclusion, as served",
             "consistency, as served", "tlog-proof file")
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    tiles_read: list[int] = []
    with read_transaction(engine) as connection:
        for _ in range(samples):
            seq = chooser.randrange(size)
            elapsed, proof = timed(partial(tiles.inclusion_proof, connection,
                                           writer.programme_id, seq, size),
                                   cpu["inclusion, stored nodes"])
            times["inclusion, stored nodes"].append(elapsed)
            leaf = connection.execute(sqlalchemy.select(EntryRow.hash).where(
                EntryRow.programme_id == writer.programme_id, EntryRow.seq == seq)).scalar_one()
            verify_inclusion(seq, size, bytes(leaf), proof, second.root)
            old_size = chooser.randrange(1, size)
            elapsed, proof = timed(partial(tiles.consistency_proof, connection,
                                           writer.programme_id, old_size, size),
                                   cpu["consistency, stored nodes"])
            times["consistency, stored nodes"].append(elapsed)
            verify_consistency(old_size, size, tiles.root_at(
                connection, writer.programme_id, old_size), second.root, proof)
            tree = tiles.StoredTree(connection, writer.programme_id)
            tiles.merkle.inclusion_proof(seq, size, tree.get_node)
            tiles_read.append(tree.tiles_read)
    for _ in range(samples):
        seq = chooser.randrange(first.size)
        elapsed, served = timed(partial(proofs.inclusion, engine, code, seq, first.size),
                                cpu["inclusion, as served"])
        times["inclusion, as served"].append(elapsed)
        verify_inclusion(seq, first.size, served.leaf_hash, served.proof, roots[first.size])
        old_size = chooser.randrange(1, size)
        elapsed, linked = timed(partial(proofs.consistency, engine, code, old_size),
                                cpu["consistency, as served"])
        times["consistency, as served"].append(elapsed)
        verify_consistency(old_size, size, linked.old_root, second.root, linked.proof)
        elapsed, text = timed(partial(proofs.proof_file, engine, code, seq, size),
                              cpu["tlog-proof file"])
        times["tlog-proof file"].append(elapsed)
        verify_proof(text, [second.vkey])
    engine.dispose()
    return {"entries": size, "build_s": build_ms / 1000, "first_checkpoint_s": first_ms / 1000,
            "checkpoint_after_1000_more_ms": second_ms,
            "tiles_read_per_inclusion_proof": max(tiles_read),
            "proofs": {name: summary(times[name], cpu[name]) for name in names}}


def postgres_database() -> tuple[str, str]:
    admin = sqlalchemy.make_url(os.environ.get(
        "JIFEN_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    name = f"jifen_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(str(admin)).execution_options(
            isolation_level="AUTOCOMMIT").connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return admin.render_as_string(hide_password=False), name


def drop_postgres(admin_url: str, name: str) -> None:
    with create_engine(admin_url).execution_options(
            isolation_level="AUTOCOMMIT").connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--postgres-entries", type=int, default=None,
                        help="entries on PostgreSQL (default: --entries)")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--sqlite-dir", default=None, help="where the SQLite file goes")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    arguments = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(dir=arguments.sqlite_dir) as folder:
        results["SQLite"] = run(f"sqlite:///{folder}/proofs.sqlite3", arguments.entries,
                                arguments.samples)
    if not arguments.sqlite_only:
        admin_url, name = postgres_database()
        try:
            url = sqlalchemy.make_url(admin_url).set(database=name).render_as_string(
                hide_password=False)
            results["PostgreSQL"] = run(url, arguments.postgres_entries or arguments.entries,
                                        arguments.samples)
        finally:
            drop_postgres(admin_url, name)
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    for backend, figures in results.items():
        print(f"\n{backend}: {figures['entries']:,} entries, written in {figures['build_s']:.0f} s;"
              f" first checkpoint {figures['first_checkpoint_s']:.1f} s; checkpoint after "
              f"{MORE_ENTRIES:,} more {figures['checkpoint_after_1000_more_ms']:.0f} ms; "
              f"at most {figures['tiles_read_per_inclusion_proof']} tile reads per proof")
        print(f"| {backend}, {arguments.samples} samples | median ms | p95 ms | max ms | "
              "median CPU ms (this process) |")
        print("|---|---:|---:|---:|---:|")
        for name, figure in figures["proofs"].items():
            print(f"| {name} | {figure['median_ms']:.2f} | {figure['p95_ms']:.2f} | "
                  f"{figure['max_ms']:.2f} | {figure['median_cpu_ms']:.2f} |")


if __name__ == "__main__":
    main()
