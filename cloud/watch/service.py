"""The rule service: the rules engine on every ingest round and on the clock, with its state in
the live state and its findings in alerts.

- **The world** (zones, lots, routes, trips, assets) is built from the archive in a thread and
  swapped in whole; it is rebuilt when the registry version moves (the API and ``hazwatch
  admin`` bump it on every change of a geo object or an asset). Every worker looks at the
  version every ``world_check_s`` (the clock loop, and each round) and rebuilds in the
  background while rounds go on with the world they have, so every worker follows an edit
  within about a second plus the build, with no restart.
- **Each round** (:meth:`RuleService.step`, an ingest step): the fixes of each asset go through
  :meth:`~cloud.rules.engine.Engine.evaluate` on the asset's state, which is written back only
  if nobody wrote it meanwhile (compare-and-set): on a conflict the asset is loaded and
  evaluated again, so two workers taking fixes of one asset at the same moment never lose a
  transition nor raise one twice. Events go into the state's outbox with it, then to the alert
  service, then the outbox is emptied: a worker killed in between leaves them for the next
  evaluation.
- **Late fixes** (older than an asset's evaluated time): the asset is evaluated again from the
  newest checkpoint of its state before them, with its archived fixes since
  (:meth:`~cloud.rules.engine.Engine.reevaluate`). Checkpoints are kept every
  ``checkpoint_every_s`` of observation time for ``checkpoint_horizon_s``.
- **The clock** (:meth:`RuleService.tick`): assets whose rules need the clock (a window starting,
  a stop to confirm, a trip's end) are advanced to now minus ``grace_s`` (late deliveries
  within the grace are not late); one worker at a time (a lock in the live state).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest import Accepted, cancel_requests, raise_if_cancelled
from cloud.live import BatchLive, LiveState
from cloud.models import LiveEvent
from cloud.rules.config import RulesConfig
from cloud.rules.engine import Engine, Outcome, base_for_late
from cloud.rules.events import Event, alert_key
from cloud.rules.objects import ZoneSpec
from cloud.rules.state import AssetState, decode_state, encode_state
from cloud.rules.vessels import ais_fishing
from cloud.rules.world import World
from cloud.watch.twins import TwinWatch

__all__ = ["RuleService"]

log = logging.getLogger(__name__)
#: How often AIS static data is looked at for targets that fish (seconds).
_FISHING_CHECK_S: Final = 300.0

#: Failed applications of one finding before it is dropped (a minute of clock steps and more).
_APPLY_ATTEMPTS: Final = 20
_ATTEMPTS: Final = 16
_LEVELS: Final = {"info": "info", "warning": "warning", "critical": "critical"}
#: Assets whose findings are applied at the same time (each asset's in order).
_APPLY_CONCURRENCY: Final = 8


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RuleService:
    """Runs the rules for one cloud worker (several workers share the live state).

    Args:
        store: the archive (the world's objects and assets; fixes for re-evaluation).
        live: the live state (rule states, checkpoints, timers, lot members, locks, feed).
        alerts: where findings become alerts (``None``: findings are only counted and fed).
        config: thresholds per asset class.
        world_check_s: how often the registry version is looked at.
        grace_s: the clock runs this far behind now (deliveries that late are not late).
        clock: UTC epoch ms.
    """

    def __init__(
        self,
        *,
        store: Store,
        live: LiveState,
        alerts: AlertService | None,
        config: RulesConfig | None = None,
        world_check_s: float = 1.0,
        grace_s: float = 60.0,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.store = store
        self.live = live
        self.alerts = alerts
        self.config = config or RulesConfig()
        self.world_check_s = world_check_s
        self.grace_ms = int(grace_s * 1000)
        self.clock = clock
        self.engine = Engine(World.build([], [], config=self.config))
        self.counters: collections.Counter[str] = collections.Counter()
        self._world_version: int | None = None
        self._world_checked = -float("inf")
        self._fishing_checked = -float("inf")
        self._fishing: set[str] = set()
        self._world_lock = asyncio.Lock()
        self._owner = uuid.uuid4().hex
        self._last_tick_ms = -1
        self._building: asyncio.Task[bool] | None = None
        self._severity: dict[str, str] = {}
        self._severity_world: World | None = None
        self._lots: frozenset[str] = frozenset()
        self._lots_world: World | None = None
        #: identical tracks of vessels (across assets, so beside the per-asset engine)
        self.twins = (
            None
            if alerts is None
            else TwinWatch(live, alerts, lambda: self.engine.world, counters=self.counters)
        )

    @property
    def world(self) -> World:
        return self.engine.world

    # -- the world --------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> bool:
        """Rebuild the world if the registry changed (or ``force``); return whether it did."""
        now = time.monotonic()
        if not force and now - self._world_checked < self.world_check_s:
            return False
        self._world_checked = now
        async with self._world_lock:
            version = await self.live.registry_version()
            same = not force and version == self._world_version
            # AIS static data is no registry change: whether a target fishes is looked at
            # every few minutes, and a change rebuilds the world too.
            if same and now - self._fishing_checked < _FISHING_CHECK_S:
                return False
            fishing = ais_fishing(await self.store.vessels(None))
            self._fishing_checked = now
            if same and fishing == self._fishing:
                return False
            current = await self.store.list_geo(None, None)
            history = await self.store.geo_history(("zone", "lot"))
            assets = await self.store.list_assets(None)
            objects = [o for o in current if o.kind in ("route", "trip")] + history
            try:
                world = await asyncio.to_thread(
                    functools.partial(
                        World.build, objects, assets, config=self.config, label=str(version),
                        fishing=fishing,
                    )
                )  # fmt: skip
            except Exception:
                self.counters["world_error"] += 1
                log.exception("rules: the world could not be built; keeping the previous one")
                return False
            self.engine = Engine(world)  # one assignment: a round sees one world or the other
            self._world_version = version
            self._fishing = fishing
            self.counters["world_builds"] += 1
            log.info(
                "rules: world %s with %d zones and lots, %d routes, %d assets with trips",
                version, len(world.zones), len(world.routes), len(world.trips),
            )  # fmt: skip
            return True

    def refresh_soon(self) -> None:
        """Look at the registry version (if ``world_check_s`` has passed) and rebuild the world
        in the background if it moved; the caller goes on with the current world."""
        if time.monotonic() - self._world_checked < self.world_check_s:
            return
        if self._building is not None and not self._building.done():
            return
        self._building = asyncio.create_task(self._refresh_logged(), name="rules-world")

    async def _refresh_logged(self) -> bool:
        try:
            return await self.refresh()
        except Exception:
            self.counters["world_error"] += 1
            log.exception("rules: looking for world changes failed; trying again")
            return False

    async def close(self) -> None:
        """Stop a world build in progress."""
        if self._building is not None:
            self._building.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._building

    # -- rounds -----------------------------------------------------------------------------

    async def step(self, accepted: Accepted) -> None:
        """The ingest step: evaluate the round's fixes."""
        self.refresh_soon()
        if not accepted.fixes:
            return
        fixes: dict[str, list[wire.Fix]] = {}
        for rec in accepted.fixes:
            fixes.setdefault(rec.item.asset, []).append(rec.item)
        await self.evaluate(fixes, now_ms=accepted.recv_ms)
        if self.twins is not None:
            await self.twins.step(accepted)

    async def evaluate(self, fixes: Mapping[str, Sequence[wire.Fix]], *, now_ms: int) -> None:
        """Evaluate fixes per asset, writing states with compare-and-set, then raise findings."""
        pending = dict(fixes)
        for attempt in range(_ATTEMPTS):
            if not pending:
                return
            if attempt:  # another worker keeps writing these assets: let it finish
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
            engine = self.engine
            states = await self._load(pending)
            outcome = engine.evaluate(pending, states, now_ms=now_ms)
            for asset_id, late in outcome.late.items():
                await self._reevaluate(
                    engine, asset_id, states.get(asset_id), late, outcome, now_ms
                )
            self._count(outcome)
            written = await self._commit(outcome, states)
            pending = {a: f for a, f in pending.items() if a not in written}
            if pending:
                self.counters["rule_state_conflict"] += len(pending)
        if not pending:
            return
        self.counters["rule_state_gave_up"] += len(pending)
        log.error(
            "rules: %d assets kept changing under us; their fixes were not evaluated", len(pending)
        )

    async def _load(self, assets: Iterable[str]) -> dict[str, AssetState]:
        loaded = await self.live.get_rule_states(list(assets))
        states = {}
        for asset_id, (version, raw) in loaded.items():
            state = decode_state(raw)
            state.version = version
            states[asset_id] = state
        return states

    async def _reevaluate(
        self,
        engine: Engine,
        asset_id: str,
        current: AssetState | None,
        late: Sequence[wire.Fix],
        outcome: Outcome,
        now_ms: int,
    ) -> None:
        assert current is not None
        earliest = min(f.ts for f in late)
        checkpoints = await self.live.rule_checkpoints(asset_id)
        base, clock_ms, exact = base_for_late(current, checkpoints, earliest)
        if not exact:  # older than every checkpoint kept: judged from the oldest (counted)
            self.counters["rules_late_beyond_horizon"] += 1
        archived = await self.store.track(asset_id, max(0, clock_ms + 1), current.clock_ms + 1)
        mine = [f for f in [*archived, *late] if f.ts > clock_ms]
        again = engine.reevaluate(asset_id, current, base, mine, now_ms=now_ms)
        outcome.states[asset_id] = again.states[asset_id]
        outcome.events += again.events
        outcome.due[asset_id] = again.due[asset_id]
        outcome.checkpoints.update(again.checkpoints)
        self.counters["rules_reevaluated"] += 1
        self.counters["rules_late_fixes"] += len(late)

    def _count(self, outcome: Outcome) -> None:
        for reason, count in outcome.dropped.items():
            self.counters["fix_dropped." + reason] += count

    async def _commit(self, outcome: Outcome, before: Mapping[str, AssetState]) -> set[str]:
        """Write the states (with their events in the outbox); apply the events of those
        written. Returns the assets written.

        Every live-state write of the round covers all its assets at once (one compare-and-set
        call, one due-index call...): the round trips are per round, not per asset.
        """
        by_asset: dict[str, list[Event]] = {}
        for event in outcome.events:
            by_asset.setdefault(event.asset, []).append(event)
        writes = {}
        for asset_id, state in outcome.states.items():
            events = by_asset.get(asset_id)
            if events:
                state.outbox = [*state.outbox, *events]
            writes[asset_id] = (state.version, encode_state(state))
        conflicts = await self.live.put_rule_states(writes)
        written = set(writes) - conflicts if conflicts else set(writes)
        lots: list[tuple[str, str, int | None]] = []
        lot_ids = self._lot_ids()
        for asset_id in written:
            state = outcome.states[asset_id]
            state.version += 1
            if lot_ids:
                lots += _lot_changes(lot_ids, asset_id, before.get(asset_id), state)
        await self.live.set_lot_members(lots)
        await self.live.set_rule_due({a: outcome.due.get(a) for a in written})
        for asset_id, (after_ms, taken) in outcome.checkpoints.items():
            if asset_id in written:  # made with the late fixes: they replace those after
                await self.live.replace_rule_checkpoints(asset_id, after_ms, taken)
        await self._settle({a: outcome.states[a] for a in written})
        return written

    async def _settle(self, states: Mapping[str, AssetState]) -> None:
        """After a commit: apply the outboxes and write the emptied states back, then keep
        the checkpoints due and note them in the states (each step one call for all the
        assets, in the order the one-asset steps have)."""
        applied, retry = await self._apply_outboxes(states)
        if applied:
            emptied = {a: (states[a].version, encode_state(states[a])) for a in applied}
            conflicts = await self.live.put_rule_states(emptied)
            for asset_id in set(emptied) - conflicts:
                states[asset_id].version += 1
        if retry:
            await self.live.set_rule_due(retry)
        checkpoints = self._checkpoints(states)
        if checkpoints:
            await self._add_checkpoints(checkpoints)
            # Remember when (it decides the next one); a lost race only means one more soon.
            noted = {c[0]: (states[c[0]].version, encode_state(states[c[0]])) for c in checkpoints}
            conflicts = await self.live.put_rule_states(noted)
            for asset_id in set(noted) - conflicts:
                states[asset_id].version += 1

    async def _apply_outboxes(
        self, states: Mapping[str, AssetState]
    ) -> tuple[set[str], dict[str, int | None]]:
        """Raise each state's pending events in order and take them out of the outbox (the
        caller writes the state back, if it is still ours: a newer one has them applied
        already or will). Assets are applied concurrently (a few at a time), each one's events
        in order. Returns the assets that had events, and those due again.

        An event that cannot be applied (the archive unreachable) stays, with those after it,
        and the asset is due at the next clock step, which tries again (returned: asset ->
        when); after ``_APPLY_ATTEMPTS`` failures in a row the event is dropped (counted,
        logged), so one bad event cannot hold an asset's alerts back for ever.
        """
        retry: dict[str, int | None] = {}
        pending = [(a, s) for a, s in states.items() if s.outbox]
        if not pending:
            return set(), retry
        gate = asyncio.Semaphore(_APPLY_CONCURRENCY)

        async def one(asset_id: str, state: AssetState) -> None:
            async with gate:
                done = 0
                for event in state.outbox:
                    if not await self._apply(event):
                        state.outbox_failures += 1
                        if state.outbox_failures >= _APPLY_ATTEMPTS:
                            self.counters["finding_dropped"] += 1
                            log.error(
                                "rules: finding %s %s of %s dropped after %d failed attempts",
                                event.kind, event.action, event.asset, state.outbox_failures,
                            )  # fmt: skip
                            state.outbox_failures = 0
                            done += 1
                        break
                    state.outbox_failures = 0
                    done += 1
                state.outbox = state.outbox[done:]
                if state.outbox:
                    retry[asset_id] = self.clock() - self.grace_ms

        if len(pending) == 1:
            await one(*pending[0])
        else:
            await asyncio.gather(*(one(a, s) for a, s in pending))
        return {a for a, _ in pending}, retry

    async def _apply(self, event: Event) -> bool:
        """Apply one finding to its alert; whether it was (or need not be)."""
        self.counters[f"finding.{event.kind}.{event.action}"] += 1
        info = self.world.asset(event.asset)
        enterprise_id = info.enterprise_id
        data: dict[str, Any] = {
            **event.details, "rule": event.rule, "ref": event.ref, "lat": event.lat,
            "lon": event.lon, "flags": list(event.flags),
        }  # fmt: skip
        try:
            if enterprise_id is not None:
                await self.live.publish(
                    LiveEvent(kind="finding", enterprise_id=enterprise_id, ts_ms=event.ts,
                              data={**msgspec.to_builtins(event)})
                )  # fmt: skip
            if self.alerts is None or enterprise_id is None:
                return True
            await self.alerts.on_finding(
                enterprise_id=enterprise_id, key=alert_key(event), kind=event.kind,
                action=event.action, ts_ms=event.ts, level=self._level(event),
                asset_id=event.asset, message=_message(event), data=data,
            )  # fmt: skip
        except Exception:
            self.counters["finding_error"] += 1
            log.exception(
                "rules: finding %s %s of %s not applied (kept, to try again)",
                event.kind, event.action, event.asset,
            )  # fmt: skip
            return False
        return True

    def _level(self, event: Event) -> str:
        if event.rule == "zone":
            return self._severities().get(event.ref, "warning")
        if event.kind == "vessel.dark":
            return "critical"  # a boat that switched off its terminal beside a closed sea
        return "warning"

    def _severities(self) -> dict[str, str]:
        """Alert level per zone id of the current world (the first version of each id, as a
        scan of the zones in order finds it), made once per world."""
        world = self.world
        if self._severity_world is not world:
            levels: dict[str, str] = {}
            for zone in world.zones:
                if zone.id not in levels and isinstance(zone.spec, ZoneSpec):
                    levels[zone.id] = _LEVELS.get(zone.spec.severity, "warning")
            self._severity, self._severity_world = levels, world
        return self._severity

    def _lot_ids(self) -> frozenset[str]:
        """The lot ids of the current world, made once per world."""
        world = self.world
        if self._lots_world is not world:
            self._lots, self._lots_world = frozenset(z.id for z in world.lots), world
        return self._lots

    def _checkpoints(self, states: Mapping[str, AssetState]) -> list[tuple[str, int, bytes, int]]:
        """Checkpoints due (one every ``checkpoint_every_s`` of observation time), as
        ``(asset, clock_ms, state, keep_after_ms)``; each state notes when it was taken."""
        taken = []
        for asset_id, state in states.items():
            if state.clock_ms < 0:
                continue
            thresholds = self.world.thresholds(self.world.asset(asset_id).asset_class)
            every = int(thresholds.checkpoint_every_s * 1000)
            if state.clock_ms - state.checkpoint_ms < every:
                continue
            snapshot = msgspec.structs.replace(state, outbox=[])
            keep_after = state.clock_ms - int(thresholds.checkpoint_horizon_s * 1000)
            taken.append((asset_id, state.clock_ms, encode_state(snapshot), keep_after))
            state.checkpoint_ms = state.clock_ms
        return taken

    async def _add_checkpoints(self, checkpoints: list[tuple[str, int, bytes, int]]) -> None:
        live = self.live
        if isinstance(live, BatchLive):
            await live.add_rule_checkpoints(checkpoints)
            return
        for asset_id, clock_ms, state, keep_after in checkpoints:
            await live.add_rule_checkpoint(asset_id, clock_ms, state, keep_after_ms=keep_after)

    # -- the clock --------------------------------------------------------------------------

    async def tick(self, *, now_ms: int | None = None) -> int:
        """Advance the assets whose rules need the clock; return how many."""
        now = self.clock() if now_ms is None else now_ms
        until = now - self.grace_ms
        due = set(await self.live.due_rule_assets(until))
        ending: dict[str, int] = {}  # trips ending, whether their asset sent fixes or not
        for trips in self.world.trips.values():
            for trip in trips:
                if self._last_tick_ms < trip.spec.end_ms <= until:
                    asset_id = trip.spec.asset_id
                    ending[asset_id] = min(ending.get(asset_id, trip.spec.end_ms), trip.spec.end_ms)
        due |= set(ending)
        self._last_tick_ms = until
        if not due:
            return 0
        for _ in range(_ATTEMPTS):
            states = await self._load(due)
            for asset_id in due - set(states):  # never sent a fix: its trip ends unseen
                states[asset_id] = AssetState(clock_ms=ending.get(asset_id, until) - 1)
            outcome = self.engine.tick(states, until_ms=until)
            written = await self._commit(outcome, states)
            due -= written | (set(states) - set(outcome.states))
            if not due:
                break
        return len(outcome.states)

    async def run_timer(self, *, period_s: float = 5.0) -> None:
        """Tick every ``period_s`` while holding the timer lock (one worker at a time); look for
        world changes every ``world_check_s`` on every worker."""
        ttl_ms = int(period_s * 3000)
        before = cancel_requests()
        next_tick = time.monotonic()
        try:
            while True:
                self.refresh_soon()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + period_s
                    try:
                        if await self.live.try_lock("rules-timer", self._owner, ttl_ms=ttl_ms):
                            await self.tick()
                    except Exception:
                        self.counters["timer_error"] += 1
                        log.exception("rules: the clock step failed; trying again")
                # A stop that a client library swallowed (redis-py can, while a command is in
                # flight) must still end the loop, or the service never stops.
                raise_if_cancelled(before)
                await asyncio.sleep(min(period_s, self.world_check_s))
        finally:
            await self.close()


def _lot_changes(
    lots: frozenset[str], asset_id: str, before: AssetState | None, after: AssetState
) -> list[tuple[str, str, int | None]]:
    old = {
        k: t.since_ms for k, t in (before.zones if before else {}).items() if k in lots and t.inside
    }
    new = {k: t.since_ms for k, t in after.zones.items() if k in lots and t.inside}
    changes: list[tuple[str, str, int | None]] = [
        (k, asset_id, v) for k, v in new.items() if old.get(k) != v
    ]
    changes += [(k, asset_id, None) for k in old if k not in new]
    return changes


def _message(event: Event) -> str:
    names = {
        "zone.forbidden": "in a forbidden zone",
        "zone.enter": "entered a zone",
        "zone.exit": "left a zone",
        "zone.dwell": "stayed too long in a zone",
        "zone.crossed": "crossed a zone between two fixes",
        "parking.outside_lot": "stopped outside the designated lots",
        "parking.max_stay": "stayed too long in a lot",
        "trip.off_route": "left its approved route",
        "trip.wrong_direction": "drives its route the wrong way",
        "trip.checkpoint_skipped": "skipped a checkpoint",
        "trip.early_start": "started its trip before the approved window",
        "trip.not_arrived": "did not arrive by the end of its window",
        "speed.over": "over the speed limit",
        "fatigue.continuous": "driving too long without a rest",
        "fatigue.continuous_warning": "close to its continuous-driving limit",
        "fatigue.night_warning": "close to its night-driving limit",
        "fatigue.daily_warning": "close to its driving time for the day",
        "fatigue.night": "driving too long at night without a rest",
        "fatigue.daily": "over its driving time for the day",
        "fatigue.small_hours": "a long-distance coach moving between 02:00 and 05:00",
        "offline.silent": "silent for too long",
        "offline.moved": "moved while offline",
        "vessel.dark": "went dark near a restricted or moratorium zone",
    }
    late = " (found in late data)" if "late" in event.flags else ""
    where = "" if event.ref == event.asset else f": {event.ref}"
    return f"{event.asset} {names.get(event.kind, event.kind)}{where}{late}"
