"""The durable store-and-forward buffer: every item is committed on disk before it is sent.

Public surface: :class:`Buffer` (the agent's sink and the forwarder's source), its values
(:class:`Claim`, :class:`BufferStats`, :data:`Durability`, the lanes), and the pure quota thinning
in :mod:`edge.buffer.thinning`; :mod:`edge.buffer.outbox` is the SQLite table underneath.
"""

from edge.buffer.buffer import LANE_ALARM, LANE_DATA, Buffer, BufferStats, Claim, Durability
from edge.buffer.outbox import OutboxCorruptError

__all__ = [
    "LANE_ALARM",
    "LANE_DATA",
    "Buffer",
    "BufferStats",
    "Claim",
    "Durability",
    "OutboxCorruptError",
]
