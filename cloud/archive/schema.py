"""SQL schema of the archive and its migrations (SQLAlchemy Core, SQLite and PostgreSQL).

Every table is declared once here. :data:`MIGRATIONS` lists one step per schema version; the
store runs the missing ones on start, each in its own transaction, and records the version in
``schema_meta``. On PostgreSQL ``fixes`` is range-partitioned by month on ``ts_ms``; monthly
partitions are created on demand by the store and dropped whole by retention.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    inspect,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "metadata"]

metadata: Final = MetaData()

schema_meta: Final = Table(
    "schema_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

enterprises: Final = Table(
    "enterprises",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", Text, nullable=False),
    Column("region", String(6), nullable=False, index=True),
)

gateways: Final = Table(
    "gateways",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("enterprise_id", String(128), ForeignKey("enterprises.id"), nullable=False, index=True),
    Column("name", Text, nullable=False, default=""),
)

assets: Final = Table(
    "assets",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("enterprise_id", String(128), ForeignKey("enterprises.id"), nullable=False, index=True),
    Column("asset_class", String(32), nullable=False),
    Column("plate", String(64)),
    Column("mmsi", BigInteger, index=True),
    Column("name", Text, nullable=False, default=""),
    Column("long_distance", Boolean, nullable=False, server_default=false()),
)

sites: Final = Table(
    "sites",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("enterprise_id", String(128), ForeignKey("enterprises.id"), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
)

points: Final = Table(
    "points",
    metadata,
    Column("site_id", String(128), ForeignKey("sites.id"), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("unit", String(32), nullable=False, default=""),
    Column("limits", JSON, nullable=False),
)

fixes: Final = Table(
    "fixes",
    metadata,
    Column("asset_id", String(128), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("enterprise_id", String(128), nullable=False),
    Column("gateway_id", String(128), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("speed_kmh", Float),
    Column("course", Float),
    Column("heading", Float),
    Column("alt_m", Float),
    Column("hdop", Float),
    Column("pdop", Float),  # schema 2
    Column("vdop", Float),  # schema 2
    Column("fix_type", Integer),  # schema 2
    Column("sats", Integer),
    Column("quality", String(16), nullable=False),
    Column("source", String(8), nullable=False),
    Column("nav_status", Integer),
    Column("flags", String(256), nullable=False, default=""),
    Column("recv_ms", BigInteger, nullable=False),
    Index("ix_fixes_asset_ts", "asset_id", "ts_ms"),
    # Schema 5: one row per item, whoever writes it (a resend, two workers, a spill replayed
    # after a crash): inserts skip an existing (gateway, seq). ``ts_ms`` is in the key because
    # PostgreSQL partitions by it; an item's resends carry the same observation time.
    Index("ux_fixes_gateway_seq", "gateway_id", "seq", "ts_ms", unique=True),
    postgresql_partition_by="RANGE (ts_ms)",
)

readings: Final = Table(
    "readings",
    metadata,
    Column("site_id", String(128), nullable=False),
    Column("point", String(128), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("enterprise_id", String(128), nullable=False),
    Column("gateway_id", String(128), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("value", Float),
    Column("unit", String(32), nullable=False, default=""),
    Column("quality", String(16), nullable=False),
    Column("recv_ms", BigInteger, nullable=False),
    Column("late", Boolean, nullable=False, default=False),
    Index("ix_readings_point_ts", "site_id", "point", "ts_ms"),
    Index("ix_readings_ts", "ts_ms"),
    Index("ux_readings_gateway_seq", "gateway_id", "seq", unique=True),  # schema 5
)

vessels: Final = Table(
    "vessels",
    metadata,
    Column("enterprise_id", String(128), primary_key=True),
    Column("mmsi", BigInteger, primary_key=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("gateway_id", String(128), nullable=False),
    Column("data", JSON, nullable=False),
)

alerts: Final = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("enterprise_id", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("key", String(512), nullable=False),
    Column("level", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("opened_ms", BigInteger, nullable=False),
    Column("asset_id", String(128)),
    Column("site_id", String(128)),
    Column("point", String(128)),
    Column("message", Text, nullable=False, default=""),
    Column("value", Float),
    Column("acked_ms", BigInteger),
    Column("acked_by", String(256)),
    Column("closed_ms", BigInteger),
    Column("closed_by", String(256)),
    Column("comment", Text, nullable=False, default=""),
    Column("updated_ms", BigInteger),
    Column("data", JSON, nullable=False),
    Index("ix_alerts_tenant_state", "enterprise_id", "state", "opened_ms"),
    Index("ix_alerts_opened", "opened_ms"),
    Index("ix_alerts_key", "enterprise_id", "key", "opened_ms"),  # schema 7
    # A rule's alert is its condition from a start: applied twice at once, it is still one.
    Index(
        "ux_alerts_rule_start",
        "enterprise_id",
        "key",
        "opened_ms",
        unique=True,
        sqlite_where=text("key LIKE 'rule:%'"),
        postgresql_where=text("key LIKE 'rule:%'"),
    ),  # schema 7
    # One alert per condition that is not closed: the store enforces it, not only the service.
    Index(
        "ux_alerts_open_key",
        "enterprise_id",
        "key",
        unique=True,
        sqlite_where=text("state != 'closed'"),
        postgresql_where=text("state != 'closed'"),
    ),
)

alert_events: Final = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("action", String(16), nullable=False),
    Column("by", String(256), nullable=False, default=""),
    Column("comment", Text, nullable=False, default=""),
    Column("data", JSON, nullable=False),
    Index("ix_alert_events_alert", "alert_id", "id"),
)

geo_objects: Final = Table(
    "geo_objects",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("enterprise_id", String(128), index=True),
    Column("name", Text, nullable=False),
    Column("geometry", JSON, nullable=False),
    Column("properties", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("valid_from_ms", BigInteger),
    Column("valid_to_ms", BigInteger),
    Column("updated_ms", BigInteger),
    Index("ix_geo_kind", "kind", "enterprise_id"),
)

#: Every version of every geo object (schema 6): a zone's geometry or window can change from a
#: date on, and a replay of last month uses last month's version. A deleted object's versions
#: end at its deletion (``valid_to_ms``).
geo_versions: Final = Table(
    "geo_versions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("enterprise_id", String(128)),
    Column("name", Text, nullable=False),
    Column("geometry", JSON, nullable=False),
    Column("properties", JSON, nullable=False),
    Column("valid_from_ms", BigInteger),
    Column("valid_to_ms", BigInteger),
    Column("updated_ms", BigInteger),
    Index("ix_geo_versions_kind", "kind"),
)

api_keys: Final = Table(
    "api_keys",
    metadata,
    Column("hash", String(128), primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("enterprise_id", String(128)),
    Column("region", String(6)),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

gaps: Final = Table(
    "gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gateway_id", String(128), nullable=False),
    Column("enterprise_id", String(128)),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("missing", BigInteger, nullable=False),
    Column("detected_ms", BigInteger, nullable=False),
    Index("ix_gaps_gateway", "gateway_id", "detected_ms"),
)

rejected: Final = Table(
    "rejected",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts_ms", BigInteger, nullable=False, index=True),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("topic", Text, nullable=False, default=""),
    Column("gateway_id", String(128)),
    Column("field", Text),
    Column("payload", LargeBinary, nullable=False),
)

#: Durable de-duplication ledger: one row per (gateway, seq) ever accepted (kept as long as
#: positions). Used in the embedded setup; with Redis the live state keeps bitmaps instead.
seen_seqs: Final = Table(
    "seen_seqs",
    metadata,
    Column("gateway_id", String(128), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("recv_ms", BigInteger, nullable=False, index=True),
)

#: Highest data ``seq`` received per gateway (gap detection's high-water mark), kept with the
#: durable ledger so that gaps spanning a restart of the embedded setup are still found.
seq_high: Final = Table(
    "seq_high",
    metadata,
    Column("gateway_id", String(128), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

#: The newest edge alarm applied per condition (schema 4): its observation time, ``seq``, state
#: and gateway. Edge alarms of a condition are applied in the order they happened whatever order
#: the workers process them in (one gateway's by ``seq``, others' by ``(ts_ms, seq)``); an older
#: one is ignored.
alarm_marks: Final = Table(
    "alarm_marks",
    metadata,
    Column("enterprise_id", String(128), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("state", String(8), nullable=False),
    Column("gateway_id", String(128), nullable=False, server_default=""),
)

#: Who is told of alerts (schema 8): a dispatcher or safety manager of one enterprise
#: (``enterprise_id``) or a regulator of a region (``region``), with the endpoints to reach
#: them on (``channels``: ``[{"channel": "webhook", "address": URL, "secret": ...}]``), the
#: severities they want, quiet hours per severity (Beijing time) and whether closes are sent.
notify_recipients: Final = Table(
    "notify_recipients",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("tier", String(16), nullable=False),
    Column("enterprise_id", String(128), index=True),
    Column("region", String(6), index=True),
    Column("name", Text, nullable=False, default=""),
    Column("channels", JSON, nullable=False),
    Column("severities", JSON, nullable=False),
    Column("quiet", JSON, nullable=False),
    Column("notify_close", Boolean, nullable=False, default=False),
    Column("updated_ms", BigInteger, nullable=False),
)

#: The notification outbox (schema 8): one row per (alert event, recipient, channel), kept
#: unique by ``dedupe`` so that enqueuing the same event again writes nothing. A worker claims
#: a due ``pending`` row by moving ``next_ms`` past its lease and naming itself ``owner``; the
#: row falls due again if the worker dies.
notifications: Final = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe", String(512), nullable=False, unique=True),
    Column("alert_id", String(64), nullable=False),
    Column("enterprise_id", String(128), nullable=False),
    Column("event", String(16), nullable=False),
    Column("recipient_id", String(128), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("address", Text, nullable=False),
    Column("secret", Text),  # a webhook's signing secret (never shown by the API)
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_ms", BigInteger, nullable=False),
    Column("owner", String(128)),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("done_ms", BigInteger),
    Column("last_error", Text, nullable=False, default=""),
    Index("ix_notifications_due", "status", "next_ms"),
    Index("ix_notifications_alert", "alert_id", "id"),
    Index("ix_notifications_recipient", "recipient_id", "channel", "created_ms"),
)

#: Every delivery attempt of a notification (schema 8): outcome, HTTP/SMTP code, error.
notify_attempts: Final = Table(
    "notify_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notification_id", Integer, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("worker", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("code", Integer),
    Column("error", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=False, default=0),
    Index("ix_notify_attempts_notification", "notification_id", "id"),
)

#: Escalations of alerts nobody acknowledged in time (schema 8): one row per (alert, step),
#: claimed by one worker with a lease and marked ``done`` once applied.
alert_escalations: Final = Table(
    "alert_escalations",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("claimed_ms", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
)

#: Maintenance windows (schema 8): alerts of a site (or one point of it) or of a vehicle in a
#: window are recorded but nobody is told, and they do not escalate.
maintenance_windows: Final = Table(
    "maintenance_windows",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("enterprise_id", String(128), nullable=False, index=True),
    Column("site_id", String(128)),
    Column("point", String(128)),
    Column("asset_id", String(128)),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_ms", BigInteger, nullable=False),
)

#: History entries the outbox has read above ``cursor - sweep_overlap`` (schema 8): on
#: PostgreSQL a sweep reads that far below its cursor again (ids of concurrent transactions
#: commit out of order) and skips what it finds here, so each entry is routed once.
notify_swept: Final = Table(
    "notify_swept",
    metadata,
    Column("event_id", BigInteger, primary_key=True),
)

#: How far the outbox has read the alert history (schema 8): ``outbox`` is the highest
#: ``alert_events.id`` turned into notifications, ``floor`` the newest entry when the outbox was
#: created (nothing below it is ever sent).
notify_cursor: Final = Table(
    "notify_cursor",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("event_id", BigInteger, nullable=False),
)


async def _v1(conn: AsyncConnection) -> None:
    """Create every table (a new database gets the current layout in one step)."""
    await conn.run_sync(metadata.create_all)


def _missing_columns(sync_conn: Connection, table: str, names: tuple[str, ...]) -> list[str]:
    present = {c["name"] for c in inspect(sync_conn).get_columns(table)}
    return [n for n in names if n not in present]


async def _v2(conn: AsyncConnection) -> None:
    """Fixes keep the GSA dilutions and fix type (``wire.Fix.pdop/vdop/fix_type``)."""
    wanted = {"pdop": "FLOAT", "vdop": "FLOAT", "fix_type": "INTEGER"}
    missing = await conn.run_sync(_missing_columns, "fixes", tuple(wanted))
    for name in missing:
        # On PostgreSQL this reaches every monthly partition too.
        await conn.execute(text(f"ALTER TABLE fixes ADD COLUMN {name} {wanted[name]}"))


async def _v3(conn: AsyncConnection) -> None:
    """The per-gateway high-water mark of data seqs, seeded from the ledger (best estimate)."""
    await conn.run_sync(seq_high.create, checkfirst=True)
    await conn.execute(
        text(
            "INSERT INTO seq_high (gateway_id, seq) SELECT gateway_id, MAX(seq) FROM seen_seqs "
            "WHERE gateway_id NOT IN (SELECT gateway_id FROM seq_high) GROUP BY gateway_id"
        )
    )


async def _v4(conn: AsyncConnection) -> None:
    """The newest edge alarm applied per condition (empty: the next alarm of each sets it)."""
    await conn.run_sync(alarm_marks.create, checkfirst=True)


_DEDUPLICATE: Final = {
    "sqlite": (
        "DELETE FROM {table} WHERE rowid NOT IN (SELECT min(rowid) FROM {table} GROUP BY {key})"
    ),
    "postgresql": (
        "DELETE FROM {table} a USING {table} b WHERE a.tableoid = b.tableoid "
        "AND a.ctid > b.ctid AND {same}"
    ),
}


async def _v5(conn: AsyncConnection) -> None:
    """One row per (gateway, seq) in fixes and readings: remove repeats, then index uniquely."""
    dialect = conn.dialect.name
    for table, key, index in (
        ("fixes", ("gateway_id", "seq", "ts_ms"), "ux_fixes_gateway_seq"),
        ("readings", ("gateway_id", "seq"), "ux_readings_gateway_seq"),
    ):
        same = " AND ".join(f"a.{k} = b.{k}" for k in key)
        sql = _DEDUPLICATE["postgresql" if dialect == "postgresql" else "sqlite"]
        await conn.execute(text(sql.format(table=table, key=", ".join(key), same=same)))
        await conn.execute(
            text(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({', '.join(key)})")
        )


async def _v6(conn: AsyncConnection) -> None:
    """The version history of geo objects, seeded with each object's current version."""
    await conn.run_sync(geo_versions.create, checkfirst=True)
    columns = "id, version, kind, enterprise_id, name, geometry, properties, valid_from_ms, " \
        "valid_to_ms, updated_ms"  # fmt: skip
    await conn.execute(
        text(
            f"INSERT INTO geo_versions ({columns}) SELECT {columns} FROM geo_objects "
            "WHERE id NOT IN (SELECT id FROM geo_versions)"
        )
    )


async def _v7(conn: AsyncConnection) -> None:
    """Alerts by condition and start (late data corrects or withdraws a closed one); one rule
    alert per condition and start."""
    await conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_alerts_key ON alerts (enterprise_id, key, opened_ms)")
    )
    await conn.execute(
        text(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_alerts_rule_start ON alerts "
            "(enterprise_id, key, opened_ms) WHERE key LIKE 'rule:%'"
        )
    )


async def _v8(conn: AsyncConnection) -> None:
    """Notification recipients, outbox, attempts, the outbox's cursor over alert history,
    escalation claims and maintenance windows.

    The cursor starts at the newest alert event: history from before the upgrade is not sent.
    """
    for table in (
        notify_recipients,
        notifications,
        notify_attempts,
        notify_cursor,
        alert_escalations,
        maintenance_windows,
        notify_swept,
    ):
        await conn.run_sync(table.create, checkfirst=True)
    for name in ("outbox", "floor"):  # literals, not parameters: asyncpg types each once
        await conn.execute(
            text(
                f"INSERT INTO notify_cursor (name, event_id) SELECT '{name}', "
                "(SELECT COALESCE(MAX(id), 0) FROM alert_events) "
                f"WHERE NOT EXISTS (SELECT 1 FROM notify_cursor WHERE name = '{name}')"
            )
        )


async def _v9(conn: AsyncConnection) -> None:
    """Assets say whether they are long-distance coaches (``fatigue.small_hours``)."""
    if await conn.run_sync(_missing_columns, "assets", ("long_distance",)):
        await conn.execute(
            text("ALTER TABLE assets ADD COLUMN long_distance BOOLEAN NOT NULL DEFAULT FALSE")
        )


#: Migration steps; step ``i`` brings the schema from version ``i`` to ``i + 1``. Steps are
#: idempotent, because a new database is created at the current layout by step 1.
MIGRATIONS: Final[tuple[Callable[[AsyncConnection], Awaitable[None]], ...]] = (
    _v1,
    _v2,
    _v3,
    _v4,
    _v5,
    _v6,
    _v7,
    _v8,
    _v9,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
