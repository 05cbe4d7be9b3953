"""The rule service: the pure rules engine (:mod:`cloud.rules`) run on every ingest round and on
the clock, its per-asset state in the live state (compare-and-set), its findings as alerts.

Public surface: :class:`RuleService` (an ingest step, a clock loop, the world kept fresh).
"""

from cloud.watch.service import RuleService

__all__ = ["RuleService"]
