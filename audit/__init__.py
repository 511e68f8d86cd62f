"""Audit: what lets someone who does not trust the operator check the ledger.

Two halves. The auditor's half (`audit.verify` and what it imports:
`audit.note`, `audit.proof_file`, `ledger.canonical`, `ledger.merkle`,
`ledger.entry_format`) needs only the standard library and `cryptography`,
so an auditor's machine needs nothing else; a test runs it in a virtualenv
that has nothing more. The operator's half (`audit.checkpoints`,
`audit.tiles`, `audit.export`, `audit.importer`, `audit.boards`) reads the
database and serves or writes what the auditor checks.
"""
