"""Benchmarks of the ledger, each against a baseline; not part of the test suite.

A package so that `test_bench_ledger.py` can import the workload of
`ledger_core.py` (one definition of what is measured). Results and the
exact commands are in docs/BENCHMARKS.md.
"""
