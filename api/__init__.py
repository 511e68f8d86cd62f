"""jifen-ledger's HTTP API: a thin Flask layer over `ledger`.

Each view parses and validates (marshmallow), authorises, calls one service
function, and serialises. Business rules live in `ledger/`; refusals come
back as RFC 9457 problem details with a stable `code` (`api.problems`).
Build the app with `api.app.create_app()`; nothing is created at import.
"""
