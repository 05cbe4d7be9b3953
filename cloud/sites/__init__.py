"""The cloud's own watch of site points: thresholds, stale, frozen and rate of rise.

Public surface: :class:`SiteWatch` (the ingest step and the clock), :class:`SitesConfig` (the
``[sites]`` defaults) and the pure transitions of :mod:`cloud.sites.core`.
"""

from cloud.sites.config import SitesConfig
from cloud.sites.service import LOCK_NAME, SOURCE, SiteWatch, state_key

__all__ = ["LOCK_NAME", "SOURCE", "SiteWatch", "SitesConfig", "state_key"]
