"""Pure parts of ingest: classify items, mark late and future ones, order fixes, find gaps.

No I/O and no clock: :mod:`cloud.ingest` gives the receive time and the stores' answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import wire
from cloud.models import Gap, Received

__all__ = [
    "Accepted",
    "Step",
    "candidate_gaps",
    "classify",
    "is_future",
]


@dataclass(slots=True)
class Accepted:
    """What one ingest round accepted, per kind, after de-duplication, marking and ordering.

    Fixes are ordered by asset, then observation time (each asset's fixes in time order);
    alarms by ``seq``. This is what the pipeline steps (rules) receive.
    """

    recv_ms: int
    fixes: list[Received[wire.Fix]] = field(default_factory=list)
    readings: list[Received[wire.Reading]] = field(default_factory=list)
    vessels: list[Received[wire.Vessel]] = field(default_factory=list)
    alarms: list[Received[wire.Alarm]] = field(default_factory=list)
    health: list[Received[wire.Health]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    #: per gateway, the seqs the cloud now answers for (archived or spilled, applied, known
    #: from before, or kept as rejected): what the gateway may delete (see ``wire.acks``)
    acked: dict[str, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return (
            len(self.fixes)
            + len(self.readings)
            + len(self.vessels)
            + len(self.alarms)
            + len(self.health)
        )


#: A pipeline step (the rules plug in here): gets each round's accepted items, after they are
#: archived and in the live state. A step that raises is logged and counted; the rest go on.
Step: TypeAlias = Callable[[Accepted], Awaitable[None]]


def is_future(ts_ms: int, recv_ms: int, *, tolerance_ms: int) -> bool:
    """Whether an observation time lies ahead of the receive time beyond the clock tolerance."""
    return ts_ms > recv_ms + tolerance_ms


def classify(
    items: Iterable[tuple[str, str, wire.Item]],
    *,
    recv_ms: int,
    future_tolerance_ms: int,
    latest_fix_ms: Mapping[str, int],
    latest_reading_ms: Mapping[tuple[str, str, str], int],
) -> Accepted:
    """Sort accepted items by kind, mark late and future ones and order fixes per asset.

    Args:
        items: ``(gateway_id, enterprise_id, item)`` already de-duplicated.
        recv_ms: receive time of this round.
        future_tolerance_ms: observation times further ahead than this are flagged future.
        latest_fix_ms: newest known observation time per asset (live state); an older fix is late.
        latest_reading_ms: same per ``(enterprise, site, point)``.
    """
    out = Accepted(recv_ms=recv_ms)
    for gw, tenant, item in items:
        future = is_future(item.ts, recv_ms, tolerance_ms=future_tolerance_ms)
        if isinstance(item, wire.Fix):
            late = item.ts < latest_fix_ms.get(item.asset, -1)
            out.fixes.append(Received(item, gw, tenant, recv_ms, late=late, future=future))
        elif isinstance(item, wire.Reading):
            late = item.ts < latest_reading_ms.get((tenant, item.site, item.point), -1)
            out.readings.append(Received(item, gw, tenant, recv_ms, late=late, future=future))
        elif isinstance(item, wire.Vessel):
            out.vessels.append(Received(item, gw, tenant, recv_ms, future=future))
        elif isinstance(item, wire.Alarm):
            out.alarms.append(Received(item, gw, tenant, recv_ms, future=future))
        else:
            out.health.append(Received(item, gw, tenant, recv_ms, future=future))
    out.fixes.sort(key=lambda r: (r.item.asset, r.item.ts, r.item.seq))
    out.readings.sort(key=lambda r: (r.item.site, r.item.point, r.item.ts))
    out.alarms.sort(key=lambda r: (r.gateway_id, r.item.seq))
    return out


def candidate_gaps(previous_high: int | None, new_seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of seqs not in this data batch: before it (since ``previous_high``) and inside it.

    Only candidates: the caller asks the ledger how many of each run were really never seen
    (alarms travel ahead on their own topic and fill some of them).
    """
    ordered = sorted(new_seqs)
    if not ordered:
        return []
    prev = ordered[0] - 1 if previous_high is None else previous_high
    runs: list[tuple[int, int]] = []
    for seq in ordered:
        if seq <= prev:
            continue  # at or below the high-water mark: a retransmission filling an old gap
        if seq > prev + 1:
            runs.append((prev + 1, seq - 1))
        prev = seq
    return runs
