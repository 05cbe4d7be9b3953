"""Ingest: the MQTT stream of every gateway -> validated, de-duplicated, ordered items in the
archive and the live state, with gaps, rejects and edge alarms accounted for.

Public surface: :class:`Ingest` (the round pipeline, usable without a broker), :func:`serve` (owns
the MQTT connection), :class:`Spill` (archive writes the database refused, kept on disk), and the
pure core in :mod:`cloud.ingest.core` (classify, order, gaps).
"""

from cloud.ingest.core import Accepted, Step
from cloud.ingest.mqtt import cancel_requests, raise_if_cancelled, serve, topic_filters
from cloud.ingest.pipeline import Ingest
from cloud.ingest.spill import SPILLED_KINDS, Spill, SpillKind

__all__ = [
    "SPILLED_KINDS",
    "Accepted",
    "Ingest",
    "Spill",
    "SpillKind",
    "Step",
    "cancel_requests",
    "raise_if_cancelled",
    "serve",
    "topic_filters",
]
