"""Routing (pure): severities, escalations, tiers, regions, quiet hours in Beijing time."""

from __future__ import annotations

import hashlib
import hmac

from cloud.alerts import new_alert
from cloud.models import Alert
from cloud.notify.channels import segments, sign
from cloud.notify.config import NotifySettings
from cloud.notify.records import Change, Endpoint, QuietHours, Recipient
from cloud.notify.routing import in_quiet_hours, notify_event, route, severity_of

SETTINGS = NotifySettings()
#: 2026-06-01 02:00 UTC = 10:00 Beijing time.
T10_BJ = 1_780_279_200_000
HOUR = 3_600_000


def alert(*, level: str = "H", site: str | None = "s1", asset: str | None = None) -> Alert:
    return new_alert(
        alert_id="a1", enterprise_id="e1", key="k", kind="sensor", level=level, now_ms=T10_BJ,
        site_id=site, asset_id=asset, point="LT01" if site else None, value=9.5,
    )  # fmt: skip


def change(
    action: str = "open",
    *,
    level: str = "H",
    site: str | None = "s1",
    data: dict[str, object] | None = None,
) -> Change:
    return Change(
        event_id=7, action=action, ts_ms=T10_BJ, data=data or {},
        prev_level=None if action == "open" else "H",
        alert=alert(level=level, site=site, asset=None if site else "truck1"), region="320281",
    )  # fmt: skip


def people() -> list[Recipient]:
    hook = Endpoint(channel="webhook", address="http://x/hook", secret="s")
    sms = Endpoint(channel="sms", address="13800000000")
    return [
        Recipient(id="disp", tier="enterprise", enterprise_id="e1", channels=(hook, sms)),
        Recipient(id="other", tier="enterprise", enterprise_id="e2", channels=(hook,)),
        Recipient(id="boss", tier="safety_manager", enterprise_id="e1", channels=(sms,)),
        Recipient(id="wuxi", tier="regulator", region="320200", channels=(hook,)),
        Recipient(id="suzhou", tier="regulator", region="320500", channels=(hook,)),
    ]


def test_severities_come_from_levels() -> None:
    assert [severity_of(x, SETTINGS) for x in ("HH", "critical", "H", "fault", "info")] == [
        "critical", "critical", "warning", "warning", "info",
    ]  # fmt: skip


def test_escalation_is_a_higher_severity_or_the_rules_escalation() -> None:
    assert notify_event(change("update", level="H"), SETTINGS) is None  # same severity
    up = Change(event_id=8, action="update", ts_ms=0, data={"level": "HH"}, prev_level="H",
                alert=alert())  # fmt: skip
    assert notify_event(up, SETTINGS) == "escalate"
    rules = change("update", data={"level": "critical", "data": {"escalated_ms": T10_BJ}})
    assert notify_event(rules, SETTINGS) == "escalate"
    # a later update (a repeat counted) still carries the mark: not an escalation again
    repeat = change("update", data={"data": {"escalated_ms": T10_BJ - 1, "count": 2}})
    assert notify_event(repeat, SETTINGS) is None
    late = change("update", data={"data": {"escalation": 1, "escalation_ms": T10_BJ - 1}})
    assert notify_event(late, SETTINGS) is None
    assert notify_event(change("acknowledge"), SETTINGS) is None
    assert notify_event(change("withdraw"), SETTINGS) == "close"


def test_a_site_alert_reaches_the_enterprise_and_its_regulator_at_once() -> None:
    sent = route(change(), people(), now_ms=T10_BJ, settings=SETTINGS)
    assert sorted((o.recipient_id, o.channel) for o in sent) == [
        ("disp", "sms"), ("disp", "webhook"), ("wuxi", "webhook"),
    ]  # fmt: skip
    assert {o.status for o in sent} == {"pending"}
    assert len({o.dedupe for o in sent}) == 3
    assert "【hazwatch】预警发生：s1/LT01" in sent[0].payload["text"]


def test_a_vehicle_alert_reaches_the_enterprise_and_escalations_every_tier() -> None:
    sent = route(change(site=None), people(), now_ms=T10_BJ, settings=SETTINGS)
    assert {o.recipient_id for o in sent} == {"disp"}
    up = change("update", site=None, data={"level": "critical", "data": {"escalated_ms": T10_BJ}})
    sent = route(up, people(), now_ms=T10_BJ, settings=SETTINGS)
    assert {o.recipient_id for o in sent} == {"disp", "boss", "wuxi"}
    assert {o.event for o in sent} == {"escalate"}
    for step, told in ((1, {"boss"}), (2, {"wuxi"})):
        late: dict[str, object] = {"data": {"escalation": step, "escalation_ms": T10_BJ}}
        sent = route(change("update", site=None, data=late), people(), now_ms=T10_BJ,
                     settings=SETTINGS)  # fmt: skip
        assert {o.recipient_id for o in sent} == told


def test_closes_go_only_to_those_who_want_them() -> None:
    wants = Recipient(id="w", tier="enterprise", enterprise_id="e1", notify_close=True,
                      channels=(Endpoint(channel="email", address="a@b.cn"),))  # fmt: skip
    sent = route(change("close"), [*people(), wants], now_ms=T10_BJ, settings=SETTINGS)
    assert [(o.recipient_id, o.event) for o in sent] == [("w", "close")]


def test_severities_and_quiet_hours_per_severity_but_critical_always() -> None:
    night = QuietHours(start="22:00", end="07:00")
    sleepy = Recipient(
        id="z", tier="enterprise", enterprise_id="e1", severities=("warning", "critical"),
        quiet={"warning": night, "critical": night},
        channels=(Endpoint(channel="sms", address="139"),),
    )  # fmt: skip
    at_23_bj = T10_BJ + 13 * HOUR
    warning = route(change(), [sleepy], now_ms=at_23_bj, settings=SETTINGS)
    assert [(o.status, o.reason) for o in warning] == [("skipped", "quiet hours")]
    assert route(change(), [sleepy], now_ms=T10_BJ, settings=SETTINGS)[0].status == "pending"
    critical = route(change(level="HH"), [sleepy], now_ms=at_23_bj, settings=SETTINGS)
    assert [o.status for o in critical] == ["pending"]
    only_critical = Recipient(id="c", tier="enterprise", enterprise_id="e1",
                              severities=("critical",), channels=sleepy.channels)  # fmt: skip
    assert route(change(), [only_critical], now_ms=T10_BJ, settings=SETTINGS) == []


def test_quiet_hours_are_beijing_time_and_may_span_midnight() -> None:
    night = QuietHours(start="22:00", end="07:00")
    day = QuietHours(start="12:00", end="13:30")
    assert not in_quiet_hours(night, T10_BJ)
    assert in_quiet_hours(night, T10_BJ + 12 * HOUR)  # 22:00 included
    assert in_quiet_hours(night, T10_BJ + 20 * HOUR)  # 06:00
    assert not in_quiet_hours(night, T10_BJ + 21 * HOUR)  # 07:00 excluded
    assert in_quiet_hours(day, T10_BJ + 3 * HOUR + 29 * 60_000)
    assert not in_quiet_hours(day, T10_BJ + 3 * HOUR + 30 * 60_000)


def test_chinese_text_is_cut_into_70_character_segments() -> None:
    text = "储罐液位高高报警" * 20  # 160 characters
    parts = segments(text, 70)
    assert [len(p) for p in parts] == [70, 70, 20]
    assert "".join(parts) == text
    assert segments("", 70) == [""]


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", 1_700_000_000, body) == f"t=1700000000,v1={expected}"
