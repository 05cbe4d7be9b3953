"""The live state: what is true *now* (latest fixes, gateways, rule state, live feed, the
de-duplication ledger), behind one port with a Redis adapter (scale-out) and an in-process one.

Public surface: the :class:`LiveState` and :class:`SeqLedger` ports (and :class:`BatchLedger`,
:class:`BatchLive`: many keys in one call), :class:`RedisLiveState`,
:class:`MemoryLiveState`, :class:`Subscription` and :func:`haversine_m`.
"""

from cloud.live._common import EARTH_RADIUS_M, Subscription, haversine_m
from cloud.live.memory import MemoryLiveState
from cloud.live.port import BatchLedger, BatchLive, LiveState, SeqLedger
from cloud.live.redis_adapter import RedisLiveState

__all__ = [
    "EARTH_RADIUS_M",
    "BatchLedger",
    "BatchLive",
    "LiveState",
    "MemoryLiveState",
    "RedisLiveState",
    "SeqLedger",
    "Subscription",
    "haversine_m",
]
