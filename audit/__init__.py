"""Audit: what lets someone who does not trust the operator check the ledger.

Modules here import only the standard library, `cryptography` and the
ledger's standard-library modules (`ledger.canonical`, `ledger.merkle`),
so that an auditor's machine needs nothing else.
"""
