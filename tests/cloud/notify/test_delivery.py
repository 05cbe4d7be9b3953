"""Delivery through real local receivers: signed webhooks, retries and their backoff, 4xx
failures, timeouts, expiry, SMS segments through an HTTP gateway, e-mail over SMTP, and two
workers on PostgreSQL never sending one notification twice."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from cloud.archive import Store
from cloud.notify.channels import Channel, EmailChannel, Message, SmsChannel, WebhookChannel
from cloud.notify.config import NotifySettings
from cloud.notify.dispatch import Dispatcher
from cloud.notify.records import Endpoint, Notification, Recipient
from tests.cloud.conftest import open_store
from tests.cloud.notify.receivers import HttpReceiver, SmtpReceiver
from tests.cloud.notify.support import Clock, seed, site_alert, webhook_recipient

SETTINGS = NotifySettings(
    lease_s=30, expiry_s=600, backoff_base_s=2, backoff_max_s=60, timeout_s=2, flood_max=0
)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store("sqlite", tmp_path) as opened:
        await seed(opened)
        yield opened


async def dispatch(
    store: Store,
    clock: Clock,
    channels: Mapping[str, Channel],
    settings: NotifySettings = SETTINGS,
    worker: str = "w1",
) -> Dispatcher:
    return Dispatcher(
        store=store, channels=channels, settings=settings, clock_ms=clock, worker=worker,
        rng=random.Random(1),
    )  # fmt: skip


async def only(store: Store, alert_id: str) -> Notification:
    [found] = await store.list_notifications(alert_id)
    return found


async def test_a_webhook_is_signed_and_its_attempt_recorded(sqlite_store: Store) -> None:
    clock = Clock()
    with HttpReceiver().running() as hook:
        await sqlite_store.put_recipient(webhook_recipient("disp", hook.url + "/in"))
        alert = await site_alert(sqlite_store)
        worker = await dispatch(
            sqlite_store, clock, {"webhook": WebhookChannel(timeout_s=2, allow_private=True)}
        )
        try:
            assert await worker.run_once() == 1
        finally:
            await worker.aclose()
    [request] = hook.received
    stamp, _, mac = request.headers["X-Hazwatch-Signature"].partition(",v1=")
    timestamp = stamp.removeprefix("t=")
    expected = hmac.new(b"s3cret", f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    body = json.loads(request.body)
    assert (body["event"], body["alert"]["id"], body["severity"]) == ("open", alert.id, "warning")
    assert body["id"] == request.headers["X-Hazwatch-Notification"]
    assert request.path == "/in"
    row = await only(sqlite_store, alert.id)
    assert (row.status, row.attempts) == ("sent", 1)
    assert [(a.outcome, a.code) for a in row.history] == [("sent", 200)]


async def test_a_5xx_is_retried_with_backoff_and_a_4xx_fails_at_once(sqlite_store: Store) -> None:
    clock = Clock()
    answers = {0: 503, 1: 500}
    with HttpReceiver(status=lambda n: answers.get(n, 200)).running() as flaky, \
            HttpReceiver(status=lambda _n: 410).running() as gone:  # fmt: skip
        await sqlite_store.put_recipient(webhook_recipient("disp", flaky.url))
        await sqlite_store.put_recipient(webhook_recipient("disp2", gone.url))
        alert = await site_alert(sqlite_store)
        worker = await dispatch(
            sqlite_store, clock, {"webhook": WebhookChannel(timeout_s=2, allow_private=True)}
        )
        try:
            assert await worker.run_once() == 2
            assert await worker.run_once() == 0  # not due yet: backing off
            clock.advance(2)  # the first delay is 1..2 s (2 s jittered to 50-100 %)
            assert await worker.run_once() == 1
            assert await worker.run_once() == 0
            clock.advance(4)
            assert await worker.run_once() == 1
        finally:
            await worker.aclose()
    rows = {n.recipient_id: n for n in await sqlite_store.list_notifications(alert.id)}
    assert [(a.outcome, a.code) for a in rows["disp"].history] == [
        ("retry", 503), ("retry", 500), ("sent", 200),
    ]  # fmt: skip
    assert rows["disp"].status == "sent"
    assert (rows["disp2"].status, rows["disp2"].attempts) == ("failed", 1)
    assert rows["disp2"].last_error.startswith("HTTP 410")
    assert len(gone.received) == 1


async def test_timeouts_and_refused_connections_retry_until_expiry(sqlite_store: Store) -> None:
    clock = Clock()
    settings = NotifySettings(lease_s=30, expiry_s=10, backoff_base_s=2, timeout_s=0.2, flood_max=0)
    with HttpReceiver(delay_s=1.0).running() as slow:
        down = HttpReceiver()
        down.start()
        down.stop()  # a port nothing listens on
        await sqlite_store.put_recipient(webhook_recipient("slow", slow.url))
        await sqlite_store.put_recipient(webhook_recipient("down", down.url))
        alert = await site_alert(sqlite_store)
        hook = WebhookChannel(timeout_s=0.2, allow_private=True)
        worker = await dispatch(sqlite_store, clock, {"webhook": hook}, settings)
        try:
            for _ in range(6):
                await worker.run_once()
                clock.advance(5)
        finally:
            await worker.aclose()
    rows = await sqlite_store.list_notifications(alert.id)
    assert {n.status for n in rows} == {"expired"}
    for row in rows:
        # Retried while the expiry allowed; then expired (by the last attempt's outcome, or
        # by the claim that found it past its expiry).
        assert row.history[0].outcome == "retry"
        assert {a.outcome for a in row.history} <= {"retry", "expired"}
        assert row.done_ms is not None
    slow_row = next(n for n in rows if n.recipient_id == "slow")
    assert "timeout" in slow_row.history[0].error.lower()


async def test_sms_goes_through_the_gateway_in_70_character_segments(sqlite_store: Store) -> None:
    clock = Clock()
    template = (
        '{"user": "$username", "key": "$password", "to": "$phone", "msg": "$text", "n": $part}'
    )
    with HttpReceiver().running() as gateway:
        sms = SmsChannel(
            url=gateway.url + "/sms", username="hz", password='p"w', template=template,
            segment_chars=70, timeout_s=2,
        )  # fmt: skip
        phone = Recipient(
            id="p", tier="enterprise", enterprise_id="e1",
            channels=(Endpoint(channel="sms", address="13800000000"),),
        )  # fmt: skip
        await sqlite_store.put_recipient(phone)
        alert = await site_alert(sqlite_store, key="sensor:s1:LT09:H")
        long_message = "储罐区液位高报警请立即到现场处置" * 8  # makes the text > 140 characters
        async with sqlite_store.engine.begin() as conn:
            from sqlalchemy import update

            from cloud.archive import schema as s

            await conn.execute(
                update(s.alerts).where(s.alerts.c.id == alert.id).values(message=long_message)
            )
        worker = await dispatch(sqlite_store, clock, {"sms": sms})
        try:
            await worker.run_once()
        finally:
            await worker.aclose()
    bodies = [json.loads(r.body) for r in gateway.received]
    assert [b["n"] for b in bodies] == [1, 2, 3]
    assert all(len(b["msg"]) <= 70 for b in bodies)
    assert len(bodies[0]["msg"]) == 70
    assert "".join(b["msg"] for b in bodies).endswith(long_message)
    assert {(b["user"], b["key"], b["to"]) for b in bodies} == {("hz", 'p"w', "13800000000")}
    assert (await only(sqlite_store, alert.id)).status == "sent"


async def test_email_over_smtp_with_4xx_retried_and_5xx_failed(sqlite_store: Store) -> None:
    clock = Clock()
    codes = {"ok@example.cn": 250, "busy@example.cn": 451, "nobody@example.cn": 550}
    with SmtpReceiver(rcpt_code=lambda a: codes[a]).running() as smtp:
        mail = EmailChannel(host="127.0.0.1", port=smtp.port, sender="hz@example.cn", timeout_s=2)
        people = Recipient(
            id="m", tier="enterprise", enterprise_id="e1",
            channels=tuple(Endpoint(channel="email", address=a) for a in codes),
        )  # fmt: skip
        await sqlite_store.put_recipient(people)
        alert = await site_alert(sqlite_store)
        worker = await dispatch(sqlite_store, clock, {"email": mail})
        try:
            assert await worker.run_once() == 3
        finally:
            await worker.aclose()
    rows = {n.address: n for n in await sqlite_store.list_notifications(alert.id)}
    assert rows["ok@example.cn"].status == "sent"
    assert (rows["busy@example.cn"].status, rows["busy@example.cn"].history[0].code) == (
        "pending", 451,
    )  # fmt: skip
    assert (rows["nobody@example.cn"].status, rows["nobody@example.cn"].history[0].code) == (
        "failed", 550,
    )  # fmt: skip
    [received] = smtp.mails
    assert received["To"] == "ok@example.cn"
    assert "液位高" in received.get_content()
    assert received["Subject"].startswith("【hazwatch】预警发生")


@pytest.mark.services
async def test_two_workers_on_postgresql_never_send_one_twice(tmp_path: Path) -> None:
    clock = Clock()
    async with open_store("postgresql", tmp_path) as store:
        await seed(store)
        with HttpReceiver(status=lambda n: 503 if n % 7 == 3 else 200).running() as hook:
            for r in range(3):
                await store.put_recipient(webhook_recipient(f"r{r}", f"{hook.url}/{r}"))
            for n in range(60):
                await site_alert(store, key=f"sensor:s1:P{n}:H")
            settings = NotifySettings(batch=20, concurrency=8, backoff_base_s=0.01,
                                      backoff_max_s=0.02, timeout_s=2, flood_max=0)  # fmt: skip
            workers = [
                await dispatch(
                    store,
                    clock,
                    {"webhook": WebhookChannel(timeout_s=2, allow_private=True)},
                    settings,
                    w,
                )
                for w in ("w1", "w2")
            ]

            async def drain(worker: Dispatcher) -> None:
                for _ in range(200):
                    await worker.run_once()
                    clock.advance(0.05)
                    if await store.notification_counts() == {"sent": 180}:
                        return

            try:
                await asyncio.gather(*(drain(w) for w in workers))
            finally:
                for worker in workers:
                    await worker.aclose()
        assert await store.notification_counts() == {"sent": 180}
        delivered = [r.headers["X-Hazwatch-Notification"] for r in hook.received]
        answered = [
            r.headers["X-Hazwatch-Notification"] for n, r in enumerate(hook.received) if n % 7 != 3
        ]
        assert len(answered) == len(set(answered)) == 180  # each delivered exactly once
        assert len(delivered) - len(answered) == sum(1 for n in range(len(delivered)) if n % 7 == 3)
        assert workers[0].counters.get("sent", 0) > 0
        assert workers[1].counters.get("sent", 0) > 0


async def test_a_flood_becomes_one_digest_per_window(sqlite_store: Store) -> None:
    clock = Clock()
    settings = NotifySettings(flood_max=3, flood_window_s=60, lease_s=30, timeout_s=2)
    with HttpReceiver().running() as hook:
        await sqlite_store.put_recipient(webhook_recipient("disp", hook.url))
        worker = await dispatch(
            sqlite_store,
            clock,
            {"webhook": WebhookChannel(timeout_s=2, allow_private=True)},
            settings,
        )
        try:
            opened = [await site_alert(sqlite_store, key=f"sensor:s1:P{n}:H") for n in range(8)]
            gas = await site_alert(sqlite_store, key="sensor:s1:GT1:HH", level="HH")
            await worker.run_once()
            assert len(hook.received) == 4  # three, then the critical one (never held)
            clock.advance(60)  # the window ends: its digest is due
            await worker.run_once()
        finally:
            await worker.aclose()
    digest = json.loads(hook.received[-1].body)
    assert (digest["event"], digest["count"]) == ("digest", 5)
    assert [i["alert"]["id"] for i in digest["items"]] == [a.id for a in opened[3:]]
    assert digest["text"].startswith("【hazwatch】5条告警通知合并发送：")
    assert "另有2条" in digest["text"]
    held = await sqlite_store.list_notifications(opened[5].id)
    assert [(n.status, n.last_error) for n in held] == [
        ("digested", "flood control: sent in a digest")
    ]
    assert (await only(sqlite_store, gas.id)).status == "sent"
    assert await sqlite_store.notification_counts() == {"sent": 5, "digested": 5}


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/x", "http://[::1]/x",
     "http://169.254.169.254/latest/meta-data", "http://192.168.0.10/"],
)  # fmt: skip
async def test_a_webhook_to_an_internal_address_is_refused_not_retried(url: str) -> None:
    """A dispatcher sets its own webhooks: none may make the cloud call inside its network."""
    hook = WebhookChannel(timeout_s=1)
    try:
        outcome = await hook.send(Message(id="n1", address=url, payload={"text": "x"}))
    finally:
        await hook.aclose()
    assert outcome.status == "failed"
    assert "internal address" in outcome.error
