"""Import the registry (enterprises, gateways, assets, sites, points) from TOML, JSON or CSV.

TOML and JSON files hold arrays named after the kinds::

    [[enterprises]]
    id = "jx-chem"
    name = "Jiangxi Chemical Logistics"
    region = "320281"

    [[assets]]
    id = "truck-017"
    enterprise_id = "jx-chem"
    asset_class = "hazmat_truck"
    plate = "苏B12345"

    [[points]]
    site_id = "tank-farm-1"
    tag = "T101.LT01"
    unit = "m"
    limits = { h = 8.5, hh = 9.2 }

A CSV file holds one kind, named by its file name (``assets.csv``) or the ``kind`` argument,
with a header row of field names; empty cells are "not set"; points take ``ll,l,h,hh`` columns
and the other fields of :class:`cloud.models.Limits` (``deadband``, ``poll_s``, ``span_lo``...).

Parsing is pure (:func:`parse_registry`); every error names the file, the entry and the field.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from cloud.archive import ConflictError, Store
from cloud.models import Asset, Enterprise, Gateway, Point, Site

__all__ = [
    "KINDS",
    "Registry",
    "RegistryError",
    "import_registry",
    "load_registry",
    "parse_registry",
]

#: Kinds in dependency order (an enterprise before its gateways...).
KINDS: Final = ("enterprises", "gateways", "assets", "sites", "points")
_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "enterprises": Enterprise,
    "gateways": Gateway,
    "assets": Asset,
    "sites": Site,
    "points": Point,
}
_LIMITS: Final = (
    "ll", "l", "h", "hh", "deadband", "delay_s", "kind", "poll_s", "frozen_s", "span_lo",
    "span_hi", "rate_pct_per_min",
)  # fmt: skip
_AT_RE: Final = re.compile(r" - at `\$([^`]*)`$")
_MISSING_RE: Final = re.compile(r"missing required field `([^`]*)`")


class RegistryError(ValueError):
    """A registry file that cannot be imported.

    Attributes:
        file: the file (or ``<text>``).
        where: the entry (``assets[3]``, ``row 4``) and field when known.
        reason: what is wrong.
    """

    def __init__(self, file: str, where: str, reason: str) -> None:
        self.file = file
        self.where = where
        self.reason = reason
        super().__init__(f"{file}: {where}: {reason}" if where else f"{file}: {reason}")


@dataclass(slots=True)
class Registry:
    """Parsed registry entries, each list in file order."""

    enterprises: list[Enterprise] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Entries per kind."""
        return {kind: len(getattr(self, kind)) for kind in KINDS}


def _csv_rows(text: str, kind: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for record in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = {
            k.strip(): v.strip() for k, v in record.items() if k and v and v.strip()
        }
        if kind == "points":
            row["limits"] = {k: row.pop(k) for k in _LIMITS if k in row}
        rows.append(row)
    return rows


def _convert(file: str, where: str, kind: str, raw: Any) -> Any:
    try:
        return msgspec.convert(raw, _TYPES[kind], strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        at = _AT_RE.search(message)
        path = at.group(1) if at else ""
        missing = _MISSING_RE.search(message)
        if missing:
            path += "." + missing.group(1)
        raise RegistryError(file, where + path, _AT_RE.sub("", message)) from exc


def parse_registry(
    text: str, *, fmt: str, file: str = "<text>", kind: str | None = None
) -> Registry:
    """Parse registry text.

    Args:
        text: the file content.
        fmt: ``toml``, ``json`` or ``csv``.
        file: name used in error messages.
        kind: for CSV, which kind the rows are (one of :data:`KINDS`).

    Raises:
        RegistryError: syntax, unknown kind, bad field, duplicate id.
    """
    registry = Registry()
    if fmt == "csv":
        if kind not in KINDS:
            raise RegistryError(
                file, "", f"CSV kind must be one of {', '.join(KINDS)}, not {kind!r}"
            )
        rows = _csv_rows(text, kind)
        registry_lists = {kind: [(f"row {n + 2}", r) for n, r in enumerate(rows)]}
    else:
        try:
            document = tomllib.loads(text) if fmt == "toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(file, "", f"not valid {fmt.upper()}: {exc}") from exc
        if not isinstance(document, Mapping):
            raise RegistryError(file, "", "expected a table of arrays named after the kinds")
        unknown = sorted(set(document) - set(KINDS))
        if unknown:
            raise RegistryError(file, unknown[0], f"unknown kind (expected {', '.join(KINDS)})")
        registry_lists = {}
        for name, entries in document.items():
            if not isinstance(entries, list):
                raise RegistryError(file, name, "expected an array of entries")
            registry_lists[name] = [(f"{name}[{n}]", e) for n, e in enumerate(entries)]
    for name, entries in registry_lists.items():
        seen: set[tuple[str, ...]] = set()
        target = getattr(registry, name)
        for where, raw in entries:
            entry = _convert(file, where, name, raw)
            key = (entry.site_id, entry.tag) if name == "points" else (entry.id,)
            if key in seen:
                raise RegistryError(file, where, f"duplicate {'/'.join(key)}")
            seen.add(key)
            target.append(entry)
    _check_references(registry, file)
    return registry


def _check_references(registry: Registry, file: str) -> None:
    """Entries naming an enterprise or site that is neither in this file nor left to the store."""
    sites = {s.id for s in registry.sites}
    for n, point in enumerate(registry.points):
        if registry.sites and point.site_id not in sites:
            raise RegistryError(file, f"points[{n}].site_id", f"unknown site {point.site_id!r}")


def load_registry(path: Path, *, kind: str | None = None) -> Registry:
    """Read and parse a ``.toml``, ``.json`` or ``.csv`` file (CSV kind from its name)."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("toml", "json", "csv"):
        raise RegistryError(str(path), "", "expected a .toml, .json or .csv file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RegistryError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    if suffix == "csv" and kind is None:
        kind = path.stem.lower()
    return parse_registry(text, fmt=suffix, file=str(path), kind=kind)


async def import_registry(
    store: Store, registry: Registry, *, file: str = "<registry>"
) -> dict[str, int]:
    """Create or replace every entry in the store, in dependency order; return counts per kind.

    Raises:
        RegistryError: an entry refers to an enterprise or site the store does not have.
    """
    for kind in KINDS:
        for n, entry in enumerate(getattr(registry, kind)):
            try:
                await _put(store, kind, entry)
            except ConflictError as exc:
                raise RegistryError(
                    file, f"{kind}[{n}]", f"refers to an unknown enterprise or site ({exc})"
                ) from exc
    return registry.counts()


async def _put(store: Store, kind: str, entry: Any) -> None:
    if kind == "points":
        if await store.get_site(entry.site_id) is None:
            raise ConflictError(f"site {entry.site_id!r} does not exist")
        await store.put_point(entry)
        return
    put: dict[str, Callable[[Any], Awaitable[None]]] = {
        "enterprises": store.put_enterprise,
        "gateways": store.put_gateway,
        "assets": store.put_asset,
        "sites": store.put_site,
    }
    await put[kind](entry)
