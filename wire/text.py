"""What a string of the contract may hold: the one character check every item kind uses.

PostgreSQL refuses U+0000 in text, so a single NUL in an asset id used to fail a whole ingest
round's archive writes; control characters also forge log lines and garble the map page. Every
string of every item kind, and of the envelope and the status message, is therefore held at the
wire boundary (the cloud's decoder, and the edge's :func:`~wire.codec.encode_item`, so a bad
item never enters the edge buffer) to these rules:

* **No control characters**: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F) are
  refused with reason ``bad_string``, naming the field. Free text (fields typed :data:`Text`:
  an alarm's ``message``) may hold TAB and LF: an edge alarm may quote a multi-line error, and
  losing a safety alarm over a line break would be worse than showing one (the cloud logs such
  text with ``%r``). CR stays refused there too: a bare CR rewrites a terminal line.
* **No lone surrogates** (U+D800-U+DFFF): they have no UTF-8 form. The decoder already refuses
  their escapes; the encoder refuses them here, naming the field.
* **A bounded length per field**, declared with the field's type (``Meta(max_length=...)``,
  checked by msgspec in C), reason ``too_long``: ids (site, point, asset, device) 1-128
  characters, labels (units, codes, names, flags, counter names) 32-128, free text 1024.
  Gateway ids keep their own, narrower rule (:func:`wire.topics.check_gateway_id`): they are
  MQTT topic levels.

Which fields are checked, and which of them are free text, is read from the declared types of
the structs, so a string field added to an item kind later is checked without further code.

Speed: the decoder is on the cloud's hot path, and a Python look at every string would cost
about a third of the decode time. A refused character can only come out of JSON through an
escape (a backslash), a raw DEL byte, or a raw C1 character (bytes C2 80-C2 9F; raw C0 bytes
and invalid UTF-8 are refused by msgspec itself), so :func:`may_hold_controls` looks for those
bytes first (a few microseconds for a batch of a thousand fixes) and the strings of an item
are only looked at when its bytes hold one.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Final, Literal

import msgspec

from wire.errors import WireError

__all__ = ["FREE_TEXT", "check_strings", "may_hold_controls"]


class _FreeText:
    """Marks a string type as free text (``Annotated[str, ..., FREE_TEXT]``)."""

    def __repr__(self) -> str:
        return "FREE_TEXT"


#: Annotation marker of free-text string types, which may hold TAB and LF.
FREE_TEXT: Final = _FreeText()

_LINE_BAD: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_TEXT_BAD: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_RAW_C1: Final = re.compile(b"\xc2[\x80-\x9f]")

_Plan = tuple[tuple[str, "re.Pattern[str]"], ...]
_PLANS: dict[type, _Plan] = {}


def may_hold_controls(data: bytes) -> bool:
    """Whether JSON ``data`` could decode to a string holding a refused character (cheap).

    ``False`` is certain; ``True`` only means the strings have to be looked at.
    """
    return (
        b"\\" in data or b"\x7f" in data or (b"\xc2" in data and _RAW_C1.search(data) is not None)
    )


def check_strings(obj: msgspec.Struct, path: str = "$") -> None:
    """Check every string of a decoded (or about to be encoded) item or message.

    Args:
        obj: an item, a :class:`~wire.items.Status`, any flat struct of the contract.
        path: JSON path of ``obj``, to name the field (``$.items[3]``).

    Raises:
        WireError: ``bad_string`` naming the first offending field.
    """
    for name, bad in _plan(type(obj)):
        _check(getattr(obj, name), bad, f"{path}.{name}", "the string")


def _check(value: object, bad: re.Pattern[str], where: str, what: str) -> None:
    if isinstance(value, str):
        found = bad.search(value)
        if found is not None:
            char = ord(found.group())
            detail = f"{what} holds U+{char:04X} at index {found.start()}"
            raise WireError("bad_string", detail, field=where)
    elif isinstance(value, tuple | list):
        for index, element in enumerate(value):
            _check(element, bad, f"{where}[{index}]", "the string")
    elif isinstance(value, dict):
        for key, element in value.items():
            _check(key, bad, where, "a key")
            _check(element, bad, where, f"the value of {key!r}")


def _plan(cls: type) -> _Plan:
    """The string-holding fields of a struct class and the rule of each (cached)."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        names: tuple[str, ...] = getattr(cls, "__struct_fields__", ())
        plan = tuple(
            (name, _TEXT_BAD if _is_free_text(hints[name]) else _LINE_BAD)
            for name in names
            if _holds_str(hints[name])
        )
        _PLANS[cls] = plan
    return plan


def _holds_str(tp: Any) -> bool:
    """Whether values of type ``tp`` can be or contain arbitrary strings (not literals)."""
    if tp is str:
        return True
    origin = typing.get_origin(tp)
    if origin is Literal:
        return False
    if origin is Annotated:
        return _holds_str(typing.get_args(tp)[0])
    return any(_holds_str(arg) for arg in typing.get_args(tp))


def _is_free_text(tp: Any) -> bool:
    if typing.get_origin(tp) is Annotated:
        base, *metadata = typing.get_args(tp)
        return any(m is FREE_TEXT for m in metadata) or _is_free_text(base)
    if typing.get_origin(tp) is Literal:
        return False
    return any(_is_free_text(arg) for arg in typing.get_args(tp))
