"""Active alarms persisted across agent restarts, so a restart neither re-raises nor loses a clear.

One small JSON document per source in the agent's ``state_dir``, rewritten atomically (temp file,
fsync, rename) whenever the set of active alarms changes, which is rare next to polling. A
corrupt or unreadable file is moved aside and counted: the source starts with no active alarms
and the next samples raise what is still true. A file that cannot be written (full or failing
disk) is counted and retried at the next change: the alarms and safety outputs go on from the
state in memory.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["AlarmStateStore"]

log = logging.getLogger(__name__)


class AlarmStateStore:
    """Active alarm levels by key (a point tag, or ``device_offline:<device>``).

    Args:
        path: The JSON file (created with its folder on first save).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.corrupt = 0
        #: saves that failed (the state in memory is still right; the next update retries)
        self.save_failures = 0
        self._unsaved = False
        self._active: dict[str, frozenset[str]] = self._load()

    def _load(self) -> dict[str, frozenset[str]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("alarm state %s unreadable, starting empty: %s", self.path, exc)
            self.corrupt += 1
            return {}
        try:
            data = json.loads(text)
            active = data["active"]
            return {str(k): frozenset(str(v) for v in levels) for k, levels in active.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self.path.with_suffix(".corrupt")
            log.warning("alarm state %s corrupt (%s), moved to %s", self.path, exc, aside)
            self.corrupt += 1
            os.replace(self.path, aside)
            return {}

    def active(self, key: str) -> frozenset[str]:
        """The persisted active levels of ``key`` (empty when none)."""
        return self._active.get(key, frozenset())

    def all(self) -> Mapping[str, frozenset[str]]:
        """Every key with at least one active level."""
        return dict(self._active)

    def update(self, key: str, levels: frozenset[str]) -> None:
        """Record the active levels of ``key``; saves when something changed (or a save failed)."""
        if self._active.get(key, frozenset()) == levels and not self._unsaved:
            return
        if levels:
            self._active[key] = levels
        else:
            self._active.pop(key, None)
        self._save()

    def _save(self) -> None:
        try:
            self._write()
        except OSError as exc:
            if not self._unsaved:
                log.error(
                    "alarm state %s not saved (retried at the next change): %s", self.path, exc
                )
            self._unsaved = True
            self.save_failures += 1
            return
        self._unsaved = False

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"v": 1, "active": {k: sorted(v) for k, v in sorted(self._active.items())}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
