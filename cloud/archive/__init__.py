"""The archive port: tracks, readings, alerts, registry and ingest records in SQL (SQLAlchemy
Core on SQLite, the embedded default, or PostgreSQL with monthly partitions).

Public surface: :class:`Store` and its errors and values; :mod:`cloud.archive.schema` (tables and
migrations) and :mod:`cloud.archive.postgres` (partition upkeep). ``_``-modules are private.
"""

from cloud.archive._notify import Flood
from cloud.archive.schema import SCHEMA_VERSION
from cloud.archive.store import AlarmMark, ConflictError, Scope, Store, StoreError

__all__ = [
    "SCHEMA_VERSION",
    "AlarmMark",
    "ConflictError",
    "Flood",
    "Scope",
    "Store",
    "StoreError",
]
