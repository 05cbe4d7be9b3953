"""Topic builders and parser."""

from __future__ import annotations

import pytest
from hypothesis import given

import wire
from tests.wire.strategies import gateway_ids


@given(gateway_ids)
def test_topics_round_trip(gw: str) -> None:
    assert wire.parse_topic(wire.data_topic(gw)) == (gw, "data")
    assert wire.parse_topic(wire.alarm_topic(gw)) == (gw, "alarm")
    assert wire.parse_topic(wire.status_topic(gw)) == (gw, "status")


@pytest.mark.parametrize(
    "topic", ["hz/v1/gw/other", "hz/v2/gw/data", "hz/v1/gw/data/x", "hz/v1//data", "hz/v1/+/data"]
)
def test_foreign_topics_are_rejected(topic: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.parse_topic(topic)
    assert caught.value.reason in {"bad_topic", "invalid_value"}


@pytest.mark.parametrize("gw", ["", "a/b", "a+b", "#", "-lead", "x" * 65, "空格"])
def test_gateway_ids_cannot_break_topics(gw: str) -> None:
    with pytest.raises(wire.WireError):
        wire.data_topic(gw)


def test_subscriptions() -> None:
    assert wire.subscription() == "hz/v1/#"
    assert wire.subscription("data") == "hz/v1/+/data"
    assert wire.subscription("data", share_group="cloud") == "$share/cloud/hz/v1/+/data"
