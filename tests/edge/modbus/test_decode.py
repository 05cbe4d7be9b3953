"""Pure decoding: data types, word and byte orders, status registers, ranges, read planning."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.decode.registers import (
    Decoded,
    Image,
    Read,
    decode_point,
    decode_points,
    decode_raw,
    encode_point,
    encode_value,
    exception_quality,
    plan_reads,
)
from edge.profiles import Point, Profile, Register, StatusMap, Transport
from tests.edge.modbus.conftest import profile

# Golden words: what real devices put on the wire for these values.
GOLDEN = [
    (Register("holding", 0, "int16"), [0xFF85], -123),
    (Register("holding", 0, "uint16"), [0xFF85], 65413),
    (Register("holding", 0, "int32"), [0xFFFE, 0x1DC0], -123456),
    (Register("holding", 0, "int32", word_order="little"), [0x1DC0, 0xFFFE], -123456),
    (Register("holding", 0, "uint32"), [0x0001, 0xE240], 123456),
    (Register("holding", 0, "float32"), [0x4148, 0x0000], 12.5),
    (Register("holding", 0, "float32", word_order="little"), [0x0000, 0x4148], 12.5),
    (Register("holding", 0, "float32", byte_order="little"), [0x4841, 0x0000], 12.5),
    (Register("holding", 0, "float64"), [0x4029, 0x0000, 0x0000, 0x0000], 12.5),
    (Register("holding", 0, "float64", word_order="little"), [0, 0, 0, 0x4029], 12.5),
    (Register("holding", 0, "bit", bit=5), [0x0020], 1),
    (Register("holding", 0, "bit", bit=4), [0x0020], 0),
    (Register("holding", 0, "bool"), [7], 1),
    (Register("holding", 0, "string", length=3), [0x4142, 0x4344, 0x4500], "ABCDE"),
    (Register("coil", 0, "bool"), [1], 1),
]


@pytest.mark.parametrize(("reg", "words", "expected"), GOLDEN)
def test_golden_words_decode(reg: Register, words: list[int], expected: object) -> None:
    assert decode_raw(reg, words) == expected


@pytest.mark.parametrize(("reg", "words", "expected"), GOLDEN[:10])
def test_encode_is_the_inverse_on_golden_words(
    reg: Register, words: list[int], expected: int | float
) -> None:
    assert encode_value(reg, expected) == words


@given(
    value=st.integers(-(2**31), 2**31 - 1),
    word_order=st.sampled_from(["big", "little"]),
    byte_order=st.sampled_from(["big", "little"]),
)
def test_int32_round_trips_in_every_order(value: int, word_order: str, byte_order: str) -> None:
    reg = Register("input", 0, "int32", word_order=word_order, byte_order=byte_order)  # type: ignore[arg-type]
    assert decode_raw(reg, encode_value(reg, value)) == value


@given(value=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_float64_round_trips(value: float) -> None:
    reg = Register("holding", 0, "float64", word_order="little")
    assert decode_raw(reg, encode_value(reg, value)) == value


def _image_of(values: dict[str, float | str]) -> Image:
    prof = profile("all_types")
    image = Image()
    for name, point in prof.points.items():
        words = encode_point(point, values.get(name, 0))
        reg = point.register
        image.store(Read(reg.kind, reg.address, reg.count), words)
    return image


def test_every_type_of_the_test_profile_decodes_with_scale_and_offset() -> None:
    values: dict[str, float | str] = {
        "I16": -12.3, "U16": 65000, "I32": -2_000_000, "I32_LE": -5, "U32": 4_000_000_000,
        "U32_LE": 70_000, "F32": 3.25, "F32_LE": -1.5, "F32_BS": 1e-3, "F64": math.pi,
        "F64_LE": -2.5e10, "FLAG": 1, "BIT5": 1, "NAME": "TT-01", "IN_I16": -45.5, "COIL": 1,
        "DI": 1,
    }  # fmt: skip
    decoded = decode_points(profile("all_types"), _image_of(values))
    for name, value in values.items():
        if name == "NAME":
            assert decoded[name].text == "TT-01"
        else:
            assert decoded[name].value == pytest.approx(value), name
        assert decoded[name].quality == "good", name


def test_status_register_codes_and_bits_set_quality() -> None:
    prof = profile("h2s_detector_v1")
    point = prof.points["H2S"]
    expectations = {0: "good", 1: "sensor_fault", 2: "maintenance", 4: "uncertain", 8: "bad"}
    for code, quality in expectations.items():
        image = Image()
        image.store(Read("holding", 0, 1), encode_point(point, 3.0))
        image.store(Read("holding", 10, 1), [code])
        assert decode_points(prof, image)["H2S"].quality == quality, code


def test_out_of_range_and_nan_are_flagged_not_alarmed() -> None:
    prof = profile("oxygen_detector_v1")
    point = prof.points["O2"]
    image = Image()
    image.store(Read("input", 0, 2), encode_point(point, 35.0))
    assert decode_point(point, image).quality == "out_of_range"
    image.store(Read("input", 0, 2), [0x7FC0, 0x0000])  # NaN
    assert decode_point(point, image) == decode_point(point, image)
    assert decode_point(point, image).value is None
    assert decode_point(point, image).quality == "bad"


def test_failed_reads_give_their_quality() -> None:
    prof = profile("temperature_transmitter_v1")
    image = Image()
    image.fail(Read("input", 0, 2), exception_quality(4))
    assert decode_points(prof, image)["TEMP"].quality == "sensor_fault"
    assert decode_points(prof, Image())["TEMP"].quality == "comm_error"
    assert exception_quality(2) == "bad"
    assert exception_quality(99) == "bad"


def test_negative_temperature_in_tenths() -> None:
    prof = profile("temperature_transmitter_v1")
    image = Image()
    image.store(Read("input", 0, 2), [0xFF85, 0])  # -123 -> -12.3 degC
    assert decode_points(prof, image)["TEMP"].value == pytest.approx(-12.3)


def test_plan_merges_small_gaps_and_respects_125_registers() -> None:
    regs = [Register("holding", a, "uint16") for a in (0, 1, 5, 20, 124, 125, 300)]
    assert plan_reads(regs, max_gap=8) == [
        Read("holding", 0, 6),
        Read("holding", 20, 1),
        Read("holding", 124, 2),
        Read("holding", 300, 1),
    ]
    assert len(plan_reads(regs, max_gap=-1)) == 7
    assert plan_reads(regs, max_gap=200) == [
        Read("holding", 0, 125),
        Read("holding", 125, 1),
        Read("holding", 300, 1),
    ]


def test_plan_never_exceeds_the_limit() -> None:
    regs = [Register("input", a, "float32") for a in range(0, 1000, 2)]
    reads = plan_reads(regs, max_gap=8)
    assert all(r.count <= 125 for r in reads)
    assert sum(r.count for r in reads) == 1000
    covered = {a for r in reads for a in range(r.address, r.address + r.count)}
    assert covered == set(range(1000))


def test_plan_keeps_tables_apart_and_counts_bits() -> None:
    regs = [Register("coil", a, "bool") for a in range(0, 40)]
    regs += [Register("discrete", 3, "bool"), Register("input", 3, "int16")]
    assert plan_reads(regs) == [
        Read("coil", 0, 40),
        Read("discrete", 3, 1),
        Read("input", 3, 1),
    ]


def test_test_profile_plans_five_reads_instead_of_one_per_point() -> None:
    prof = profile("all_types")
    regs = [p.register for p in prof.points.values()]
    assert len(plan_reads(regs)) == 5  # holding 0..29, holding 300, input, coil, discrete
    assert len(plan_reads(regs, max_gap=-1)) == len(regs)


def test_a_value_that_overflows_once_scaled_is_bad_not_infinite() -> None:
    # A float64 near its maximum times the scale is +inf: no wire item may carry it (the
    # reading and any alarm it raised would be refused when buffered).
    point = Point("P", Register("holding", 0, "float64"), scale=10.0)
    image = Image()
    image.store(Read("holding", 0, 4), encode_value(point.register, 1.5e308))
    assert decode_point(point, image) == Decoded(None, "bad")


@pytest.mark.parametrize("bit", [0, 5, 9, 15])
def test_a_bit_of_a_byte_swapped_register_round_trips(bit: int) -> None:
    # The simulator and the safety outputs encode with encode_value; the poller decodes.
    reg = Register("holding", 0, "bit", byte_order="little", bit=bit)
    assert decode_raw(reg, encode_value(reg, 1)) == 1
    others = [Register("holding", 0, "bit", byte_order="little", bit=b) for b in range(16)]
    assert [decode_raw(r, encode_value(reg, 1)) for r in others].count(1) == 1


def test_several_status_bits_set_give_the_worst_quality() -> None:
    # A device in calibration (maintenance) whose sensor also failed: the fault must show,
    # whichever bit number the vendor gave it.
    status = StatusMap(
        "ST", Register("holding", 10, "uint16"), bits={0: "maintenance", 3: "sensor_fault"}
    )
    point = Point("P", Register("holding", 0, "uint16"), status="ST")
    prof = Profile("p", "p.toml", "V", "M", "1", Transport(), {"P": point}, {"ST": status})
    for code, quality in {
        0b0001: "maintenance",
        0b1000: "sensor_fault",
        0b1001: "sensor_fault",
    }.items():
        image = Image()
        image.store(Read("holding", 0, 1), [7])
        image.store(Read("holding", 10, 1), [code])
        assert decode_points(prof, image)["P"].quality == quality, code
