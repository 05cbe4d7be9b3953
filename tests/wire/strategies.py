"""Hypothesis strategies producing valid items of every kind, and arbitrary JSON to fuzz with."""

from __future__ import annotations

from hypothesis import strategies as st

import wire

#: What a string of the contract may hold (wire.text): no control characters, no surrogates.
line_chars = st.characters(codec="utf-8", exclude_categories=["Cc"])
#: Free text (an alarm's message) may also hold TAB and LF.
text_chars = line_chars | st.sampled_from("\t\n")
#: Characters no string of the contract may hold (TAB and LF only outside free text).
bad_chars = st.characters(categories=["Cc", "Cs"])


def lines(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    """Strings a label of the contract may be."""
    return st.text(line_chars, min_size=min_size, max_size=max_size)


ids = lines(40, min_size=1)
gateway_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
seqs = st.integers(min_value=0, max_value=2**63 - 1)
timestamps = st.integers(min_value=0, max_value=32_503_680_000_000)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
lats = st.floats(min_value=-90, max_value=90)
lons = st.floats(min_value=-180, max_value=180)
degrees = st.floats(min_value=0, max_value=359.999)
counts = st.dictionaries(lines(12, min_size=1), st.integers(0, 2**40), max_size=4)

readings = st.builds(
    wire.Reading,
    seq=seqs,
    ts=timestamps,
    site=ids,
    point=ids,
    value=st.none() | finite,
    unit=lines(8),
    quality=st.sampled_from(
        ["good", "uncertain", "out_of_range", "sensor_fault", "comm_error", "maintenance", "bad"]
    ),
)
fixes = st.builds(
    wire.Fix,
    seq=seqs,
    ts=timestamps,
    asset=ids,
    lat=lats,
    lon=lons,
    speed_kmh=st.none() | st.floats(0, 2000),
    course=st.none() | degrees,
    heading=st.none() | degrees,
    alt_m=st.none() | st.floats(-1000, 20000),
    hdop=st.none() | st.floats(0, 100),
    pdop=st.none() | st.floats(0, 100),
    vdop=st.none() | st.floats(0, 100),
    fix_type=st.none() | st.integers(1, 3),
    sats=st.none() | st.integers(0, 255),
    quality=st.sampled_from(["good", "questionable", "dead_reckoning"]),
    flags=st.lists(st.sampled_from(["status_v", "high_hdop", "low_sats"]), max_size=3).map(tuple),
    source=st.sampled_from(["gnss", "ais", "jt808"]),
    nav_status=st.none() | st.integers(0, 15),
)
vessels = st.builds(
    wire.Vessel,
    seq=seqs,
    ts=timestamps,
    mmsi=st.integers(0, 999_999_999),
    ais_class=st.none() | st.sampled_from(["A", "B"]),
    name=st.none() | lines(20),
    callsign=st.none() | lines(7),
    imo=st.none() | st.integers(0, 2**30),
    ship_type=st.none() | st.integers(0, 255),
    to_bow_m=st.none() | st.integers(0, 511),
    to_stern_m=st.none() | st.integers(0, 511),
    to_port_m=st.none() | st.integers(0, 63),
    to_starboard_m=st.none() | st.integers(0, 63),
    destination=st.none() | lines(20),
)
alarms = st.builds(
    wire.Alarm,
    seq=seqs,
    ts=timestamps,
    state=st.sampled_from(["raise", "clear"]),
    level=st.sampled_from(["LL", "L", "H", "HH", "fault"]),
    site=st.none() | ids,
    point=ids,
    asset=st.none() | ids,
    device=st.none() | ids,
    value=st.none() | finite,
    limit=st.none() | finite,
    code=st.none() | lines(20),
    message=st.text(text_chars, max_size=40),
)
healths = st.builds(
    wire.Health,
    seq=seqs,
    ts=timestamps,
    buffer_depth=st.integers(0, 2**40),
    oldest_age_s=st.floats(0, 1e9),
    drops=counts,
    devices=st.dictionaries(
        lines(12, min_size=1), st.sampled_from(["online", "offline"]), max_size=4
    ),
    parse_errors=counts,
    counters=counts,
)
items = st.one_of(readings, fixes, vessels, alarms, healths)

#: Any string Python can hold, lone surrogates included.
any_text = st.text(st.characters() | bad_chars, max_size=12)
#: Arbitrary JSON values (NaN and the infinities too, which JSON has no spelling for).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["kind", "seq", "ts", "v", "gw", "items"]) | any_text,
            children,
            max_size=4,
        )
    ),
    max_leaves=25,
)
