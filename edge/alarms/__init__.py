"""Local alarms: LL/L/H/HH thresholds with deadband and delay, and their state across restarts.

Public surface: the pure threshold logic of :mod:`edge.alarms.thresholds` (:class:`Limits`,
:class:`PointAlarms`, :func:`evaluate`, :func:`restore`) and :class:`AlarmStateStore`.
"""

from edge.alarms.state import AlarmStateStore
from edge.alarms.thresholds import (
    LEVELS,
    AlarmEvent,
    Level,
    Limits,
    PointAlarms,
    evaluate,
    restore,
)

__all__ = [
    "LEVELS",
    "AlarmEvent",
    "AlarmStateStore",
    "Level",
    "Limits",
    "PointAlarms",
    "evaluate",
    "restore",
]
