"""jifen-ledger's core: the hash-chained, double-entry, append-only ledger.

Nothing is imported here on purpose: `ledger.canonical`, `ledger.merkle` and
`ledger.entry_format` must stay importable with the standard library alone
(the offline verifier uses them), so this package pulls in nothing else.
"""
