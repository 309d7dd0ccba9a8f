"""The kit below every app: what any app may use and nothing app-specific.

Roles (`core.roles`), the hand-built INSERTs (`core.sql`), the walk over parsed
JSON (`core.jsonwalk`), the history-copying save (`core.history`) and enqueueing
jobs by dotted path on commit (`core.jobs`). `core` imports no app and not
`fsar` (checked by import-linter, pyproject.toml).
"""
