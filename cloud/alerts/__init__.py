"""Alerts: the lifecycle open -> acknowledged -> closed, one open alert per condition.

Public surface: :class:`AlertService` (raise, clear, act on alerts; edge alarms in the order they
happened), :class:`InvalidTransitionError`, and the pure helpers of :mod:`cloud.alerts.lifecycle`.
"""

from cloud.alerts.lifecycle import (
    SYSTEM,
    AlertService,
    InvalidTransitionError,
    alarm_key,
    new_alert,
    transition,
)

__all__ = [
    "SYSTEM",
    "AlertService",
    "InvalidTransitionError",
    "alarm_key",
    "new_alert",
    "transition",
]
