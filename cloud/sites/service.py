"""The site watch: the cloud's own checks of site readings (thresholds, stale, frozen, rate of
rise), on every ingest round and on the clock, with each point's state in the live state.

- **Each round** (:meth:`SiteWatch.step`, an ingest step): the readings of registered points
  go through :func:`cloud.sites.core.on_reading` on the point's state, which is written back
  only if nobody wrote it meanwhile (compare-and-set; on a conflict the point is loaded and
  evaluated again), then the changes become alerts. Two workers may apply their changes of
  one point in either order; a worker whose written state was overtaken meanwhile sets each
  condition it changed to what the stored state says (:meth:`SiteWatch._recheck`). A worker
  killed between the write and the alert loses that change (the condition's next transition
  sets it right).
- **The clock** (:meth:`SiteWatch.run_timer`): every ``timer_period_s`` one worker (a lock in
  the live state, ``sites-timer``) looks for stale points of the registry; a point whose
  gateway is offline is left to the gateway's ``gateway_offline`` alert.
- **Registry**: sites and points are cached for ``points_ttl_s``; a reading of a point the
  cached site lacks has it looked up again (at most once a second).
- **State**: one entry per point in the live state's compare-and-set store (the one the rules
  keep their asset states in), under ``site:["<site>","<point>"]``: on Redis it is shared by
  every worker and kept across restarts.
- **Alerts**: key :func:`cloud.alerts.lifecycle.sensor_key` (``sensor:<site>:<point>:<cond>``).
  A level shares its key with the edge's alarm of that level (one alert whoever raised it
  first). The edge is heard first on its own conditions: a cloud change not newer than the
  edge's newest alarm of that condition (the store's alarm mark) is not applied, and the cloud
  closes only the level alerts it opened (an alert the edge raised is closed by the edge's
  clear, with the edge's own deadband).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Final, Literal

import wire
from cloud.alerts import AlertService
from cloud.alerts.lifecycle import sensor_key
from cloud.archive import Store
from cloud.ingest import Accepted, cancel_requests, raise_if_cancelled
from cloud.live import LiveState
from cloud.models import Point, Received
from cloud.sites.config import SitesConfig
from cloud.sites.core import (
    LEVELS,
    Change,
    PointState,
    Profile,
    decode_state,
    encode_state,
    on_clock,
    on_reading,
    profile,
)

__all__ = ["LOCK_NAME", "SOURCE", "SiteWatch", "state_key"]

log = logging.getLogger(__name__)
#: The live-state lock of the clock step.
LOCK_NAME: Final = "sites-timer"
#: ``data["source"]`` of the alerts the cloud raises on readings.
SOURCE: Final = "cloud"
_ATTEMPTS: Final = 16
#: A reading of a point the cached site lacks has the site looked up again after this long.
_RELOOK_S: Final = 1.0
_KINDS: Final = {"stale": "sensor.stale", "frozen": "sensor.frozen", "rate": "sensor.rate"}
_NAMES: Final = {
    "LL": "below its LL limit",
    "L": "below its L limit",
    "H": "above its H limit",
    "HH": "above its HH limit",
    "stale": "sends no readings",
    "frozen": "keeps the same value",
    "rate": "rises too fast",
}

#: A watched point: its enterprise, its registry entry and resolved profile.
_Watched = tuple[str, Point, Profile]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def state_key(site_id: str, tag: str) -> str:
    """Where a point's state lives in the live state's compare-and-set store."""
    return "site:" + json.dumps([site_id, tag], ensure_ascii=False, separators=(",", ":"))


class SiteWatch:
    """Watches site points for one cloud worker (several workers share the live state).

    Args:
        store: the archive (registry sites and points, alerts, edge alarm marks).
        live: the live state (point states, the clock's lock).
        alerts: where changes become alerts.
        config: defaults of the points' settings.
        clock: UTC epoch ms.
    """

    def __init__(
        self,
        *,
        store: Store,
        live: LiveState,
        alerts: AlertService,
        config: SitesConfig | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.store = store
        self.live = live
        self.alerts = alerts
        self.config = config or SitesConfig()
        self.clock = clock
        self.counters: collections.Counter[str] = collections.Counter()
        self._owner = uuid.uuid4().hex
        # site -> (its enterprise, its points by tag, expiry on the monotonic clock)
        self._sites: dict[str, tuple[str | None, dict[str, _Watched], float]] = {}
        self._all_loaded = -float("inf")
        self._gateway_ids: list[str] = []

    # -- the registry -----------------------------------------------------------------------

    async def _points(
        self, site_ids: Collection[str], *, newer_than_s: float | None = None
    ) -> dict[str, tuple[str | None, dict[str, _Watched]]]:
        """Each site's enterprise and watched points, from the cache while it is fresh (or
        loaded within ``newer_than_s``)."""
        now = time.monotonic()
        ttl = self.config.points_ttl_s
        young = ttl if newer_than_s is None else min(ttl, newer_than_s)
        found: dict[str, tuple[str | None, dict[str, _Watched]]] = {}
        for site_id in site_ids:
            cached = self._sites.get(site_id)
            if cached is None or cached[2] - ttl + young <= now:
                cached = await self._load_site(site_id, now)
            found[site_id] = (cached[0], cached[1])
        return found

    def forget_site(self, site_id: str) -> None:
        """Drop a site's cached points (its registry entry changed)."""
        self._sites.pop(site_id, None)

    async def _load_site(
        self, site_id: str, now: float
    ) -> tuple[str | None, dict[str, _Watched], float]:
        site = await self.store.get_site(site_id)
        points: dict[str, _Watched] = {}
        if site is not None:
            for point in await self.store.list_points(site_id):
                points[point.tag] = (site.enterprise_id, point, profile(point, self.config))
        entry = (site.enterprise_id if site else None, points, now + self.config.points_ttl_s)
        self._sites[site_id] = entry
        return entry

    async def _every_point(self) -> list[_Watched]:
        now = time.monotonic()
        if now - self._all_loaded >= self.config.points_ttl_s:
            sites = await self.store.list_sites(None)
            self._gateway_ids = [g.id for g in await self.store.list_gateways(None)]
            self._sites = {}
            for site in sites:
                await self._load_site(site.id, now)
            self._all_loaded = now
        return [w for _, points, _ in self._sites.values() for w in points.values()]

    # -- rounds -----------------------------------------------------------------------------

    async def step(self, accepted: Accepted) -> None:
        """The ingest step: watch the round's readings."""
        if accepted.readings:
            await self.observe(accepted.readings, now_ms=accepted.recv_ms)

    async def observe(self, readings: Sequence[Received[wire.Reading]], *, now_ms: int) -> int:
        """Feed readings (late and future ones are skipped); return how many changes."""
        wanted = [r for r in readings if not r.late and not r.future and r.item.value is not None]
        sites = await self._points({r.item.site for r in wanted})
        unknown = {r.item.site for r in wanted if r.item.point not in sites[r.item.site][1]}
        if unknown:  # a point added since the site was cached: look again (once a second)
            sites.update(await self._points(unknown, newer_than_s=_RELOOK_S))
        by_point: dict[str, tuple[_Watched, list[Received[wire.Reading]]]] = {}
        for rec in wanted:
            owner, points = sites[rec.item.site]
            watched = points.get(rec.item.point)
            if watched is None or owner != rec.enterprise_id:
                self.counters["reading_unwatched"] += 1
                continue
            key = state_key(rec.item.site, rec.item.point)
            by_point.setdefault(key, (watched, []))[1].append(rec)
        for _, recs in by_point.values():
            recs.sort(key=lambda r: r.item.ts)

        def evaluate(key: str, state: PointState) -> tuple[PointState, list[Change]]:
            prof = by_point[key][0][2]
            changes: list[Change] = []
            for rec in by_point[key][1]:
                r = rec.item
                state, found = on_reading(
                    prof, state, ts_ms=r.ts, value=r.value, good=r.quality == "good",
                    gateway=rec.gateway_id,
                )  # fmt: skip
                changes += found
            return state, changes

        done = await self._update(by_point, evaluate)
        return await self._apply({k: (by_point[k][0], *d) for k, d in done.items()}, now_ms)

    # -- the clock --------------------------------------------------------------------------

    async def tick(self, *, now_ms: int | None = None) -> int:
        """Raise ``stale`` for the registry's silent points; return how many changes.

        A point whose gateway is offline is not stale: the gateway's own ``gateway_offline``
        alert stands for all its points (one alert, not one per point).
        """
        now = self.clock() if now_ms is None else now_ms
        watched = {state_key(p.site_id, p.tag): (e, p, f) for e, p, f in await self._every_point()}
        watched = {k: w for k, w in watched.items() if w[2].stale_ms}
        gateways = await self.live.gateways(self._gateway_ids)
        offline = {g for g, known in gateways.items() if known.state == "offline"}

        def evaluate(key: str, state: PointState) -> tuple[PointState, list[Change]]:
            if state.gateway in offline:
                return state, []
            return on_clock(watched[key][2], state, now_ms=now)

        done = await self._update(watched, evaluate, only_stored=True)
        return await self._apply({k: (watched[k], *d) for k, d in done.items()}, now)

    async def tick_if_leader(self, *, now_ms: int | None = None) -> int | None:
        """:meth:`tick` if this worker holds (or takes) the clock's lock; ``None`` otherwise."""
        ttl_ms = int(self.config.timer_period_s * 3000)
        if not await self.live.try_lock(LOCK_NAME, self._owner, ttl_ms=ttl_ms):
            return None
        return await self.tick(now_ms=now_ms)

    async def run_timer(self) -> None:
        """Run the clock step every ``timer_period_s`` while holding the lock, until cancelled."""
        before = cancel_requests()
        while True:
            try:
                await self.tick_if_leader()
            except Exception:
                self.counters["timer_error"] += 1
                log.exception("sites: the clock step failed; trying again")
            raise_if_cancelled(before)
            await asyncio.sleep(self.config.timer_period_s)

    # -- state and alerts -------------------------------------------------------------------

    async def _update(
        self,
        keys: Iterable[str],
        evaluate: Callable[[str, PointState], tuple[PointState, list[Change]]],
        *,
        only_stored: bool = False,
    ) -> dict[str, tuple[list[Change], int]]:
        """Evaluate points on their stored states and write those that changed with
        compare-and-set, again on a conflict; return the changes of each point written and
        the version written."""
        pending = set(keys)
        done: dict[str, tuple[list[Change], int]] = {}
        for _ in range(_ATTEMPTS):
            if not pending:
                break
            loaded = await self.live.get_rule_states(pending)
            writes: dict[str, tuple[int, bytes]] = {}
            changes: dict[str, list[Change]] = {}
            for key in pending:
                version, raw = loaded.get(key, (0, None))
                if only_stored and raw is None:
                    continue
                state = decode_state(raw)
                new, found = evaluate(key, state)
                if new is not state:
                    writes[key] = (version, encode_state(new))
                    changes[key] = found
            conflicts = await self.live.put_rule_states(writes) if writes else set()
            for key in set(writes) - conflicts:
                done[key] = (changes[key], writes[key][0] + 1)
            self.counters["state_conflict"] += len(conflicts)
            pending = set(conflicts)
        if pending:
            self.counters["state_gave_up"] += len(pending)
            log.error("sites: %d points kept changing under us; not evaluated", len(pending))
        return done

    async def _apply(
        self, changes: dict[str, tuple[_Watched, list[Change], int]], now_ms: int
    ) -> int:
        """Apply each point's changes; then :meth:`_recheck` those another worker wrote since.
        Returns how many changes were applied."""
        count = 0
        for (enterprise_id, point, _), found, _ in changes.values():
            for change in found:
                count += await self._apply_logged(enterprise_id, point, change, now_ms)
        await self._recheck({k: c for k, c in changes.items() if c[1]}, now_ms)
        return count

    async def _apply_logged(
        self, enterprise_id: str, point: Point, change: Change, now_ms: int
    ) -> int:
        try:
            await self._apply_one(enterprise_id, point, change, now_ms)
        except Exception:
            self.counters["apply_error"] += 1
            log.exception("sites: %s %s of %s failed", change.action, change.condition, point.tag)
            return 0
        return 1

    async def _recheck(
        self, applied: dict[str, tuple[_Watched, list[Change], int]], now_ms: int
    ) -> None:
        """Two workers writing one point apply their changes in either order (a clear of the
        newer state before the raise of the older): when a point's state moved on since this
        worker wrote it, each condition it changed is set to what the stored state says."""
        if not applied:
            return
        loaded = await self.live.get_rule_states(list(applied))
        for key, ((enterprise_id, point, _), changes, version) in applied.items():
            stored_version, raw = loaded.get(key, (0, None))
            if stored_version == version:
                continue
            active = set(decode_state(raw).active)
            last = {change.condition: change for change in changes}
            for condition, change in last.items():
                if (condition in active) == (change.action == "raise"):
                    continue
                self.counters["rechecked"] += 1
                action: Literal["raise", "clear"] = "raise" if condition in active else "clear"
                fixed = dataclasses.replace(change, action=action)
                await self._apply_logged(enterprise_id, point, fixed, now_ms)

    async def _apply_one(
        self, enterprise_id: str, point: Point, change: Change, now_ms: int
    ) -> None:
        key = sensor_key(point.site_id, point.tag, change.condition)
        if change.condition in LEVELS:
            mark = await self.store.alarm_mark(enterprise_id, key)
            if mark is not None and mark.ts_ms >= change.ts_ms:
                self.counters["edge_newer"] += 1
                return  # the edge said something newer about this level: it has the word
        if change.action == "clear":
            current = await self.store.open_alert(enterprise_id, key)
            if current is None:
                return
            if change.condition in LEVELS and current.data.get("source") != SOURCE:
                self.counters["left_to_edge"] += 1
                return
            await self.alerts.clear_condition(
                enterprise_id=enterprise_id, key=key, now_ms=now_ms,
                comment=f"back to normal at {change.ts_ms} (value {change.value})",
            )  # fmt: skip
            self.counters["cleared." + change.condition] += 1
            return
        data = {"source": SOURCE, "ts": change.ts_ms, "limit": change.limit, **change.detail}
        await self.alerts.raise_condition(
            enterprise_id=enterprise_id,
            key=key,
            kind=_KINDS.get(change.condition, "sensor"),
            level=change.condition if change.condition in LEVELS else "warning",
            now_ms=now_ms,
            site_id=point.site_id,
            point=point.tag,
            value=change.value,
            message=f"{point.site_id} {point.tag} {_NAMES[change.condition]}",
            data=data,
        )
        self.counters["raised." + change.condition] += 1
