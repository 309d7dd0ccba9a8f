"""A hot read prepared once per connection and run with a generic plan (PostgreSQL).

Connections plan every execution of a prepared statement for its values
(plan_cache_mode = force_custom_plan, fsar/settings.py): right for a filter on a
skewed column (the held list), and a cost on every request for a read by primary
key, whose plan never depends on the value. For `start`'s read of the task with the
gate's state (tasks.services), parsing and planning were most of what PostgreSQL
spent on it: about 0.24 ms of 0.37 per read, measured with its backend's CPU
(docs/benchmarks.md). A `GenericRead` is sent once per connection as SQL `PREPARE`,
then run as one simple-protocol message,
`SET LOCAL plan_cache_mode = force_generic_plan; EXECUTE name(1, 2)`: the setting
lasts for that message's implicit transaction, or, inside a transaction, to its end
(so use it outside one, or where every later statement is a read by key too).

Only for statements whose parameters are whole numbers (ids), written out in the
message; and only with server-side binding (`server_side_binding`, which
DB_SERVER_SIDE_BINDING=0 turns off behind a transaction-pooling PgBouncer, where a
session's prepared statements do not last): `usable()` says so, and the caller
runs its plain statement otherwise.
"""

from __future__ import annotations

import itertools
import re
import weakref

from django.db import DatabaseError

# psycopg connection (the session) -> statement key -> the name it was prepared under.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Each PREPARE takes a new name, so one never meets a statement left on the session
# under the same name (a failed EXECUTE forgets its statement; see `run`).
_NAMES = itertools.count(1)
# SQLSTATEs after which the prepared statement cannot be used again: it does not exist
# (26000) or its result columns changed since (0A000, "cached plan must not change
# result type", after a migration). A timeout or a lock wait leaves it usable.
_GONE = {"26000", "0A000"}
_PLACEHOLDER = re.compile(r"%s")


class GenericRead:
    """`sql` (Django's `%s` placeholders, no other `%`) and its parameters' SQL types."""

    def __init__(self, name: str, sql: str, types: tuple[str, ...]) -> None:
        if "%" in _PLACEHOLDER.sub("", sql) or sql.count("%s") != len(types):
            raise ValueError(f"{name}: the statement must take exactly {len(types)} %s placeholders and no other %")
        self.name = name
        numbers = itertools.count(1)
        self.body = _PLACEHOLDER.sub(lambda _: f"${next(numbers)}", sql)
        self.types = ", ".join(types)

    @staticmethod
    def usable(connection) -> bool:
        options = connection.settings_dict["OPTIONS"]
        return connection.vendor == "postgresql" and bool(options.get("server_side_binding"))

    def run(self, cursor, params: list[int]) -> None:
        """Execute on `cursor` (a Django cursor), PREPAREd first if this connection has
        not yet; the cursor is left on the statement's rows."""
        connection = cursor.db
        prepared = _PREPARED.setdefault(connection.connection, {})
        name = prepared.get(self)
        if name is None:
            name = f"fsar_{self.name}_{next(_NAMES)}"
            cursor.execute(f"PREPARE {name} ({self.types}) AS {self.body}")
            prepared[self] = name
        values = ", ".join(str(int(value)) for value in params)
        try:
            cursor.execute(f"SET LOCAL plan_cache_mode = force_generic_plan; EXECUTE {name}({values})")
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) in _GONE:
                prepared.pop(self, None)  # prepared again, under a new name, next time
            raise
        cursor.nextset()  # past the SET, onto the statement's own rows
