"""The edge package's exceptions: one root, translated at the boundary."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "EdgeError", "ProfileError"]


class EdgeError(Exception):
    """Root of every error the edge agent raises on purpose."""


class ConfigError(EdgeError):
    """A configuration (agent TOML, site config) that cannot be used.

    The message names the file, the key (dotted path, ``devices[2].points.LT01.scale``) and why.
    """

    def __init__(self, file: str | Path | None, key: str | None, reason: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.reason = reason
        where = ": ".join(part for part in (self.file, self.key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class ProfileError(ConfigError):
    """A firmware profile that cannot be used (file, point and key are named)."""
