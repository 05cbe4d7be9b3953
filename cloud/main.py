"""The cloud application: :func:`create_app` builds the FastAPI app whose lifespan owns the
archive, the live state, the MQTT ingest and the retention job.

Embedded (defaults): SQLite archive, in-process live state, ingest from a local broker.
Production: PostgreSQL, Redis (so several workers share state), Mosquitto/EMQX with a shared
subscription. Resources passed in (``store=``, ``live=``) are used as they are and not closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from cloud.alerts import AlertService
from cloud.api import access_log, api_router
from cloud.api.boundary import RequestRules, allowed_methods, echo_errors
from cloud.api.deps import JsonResponse, Services, wall_clock_ms
from cloud.api.security import SecureFastAPI
from cloud.api.web import docs_router, web_router
from cloud.archive import Store
from cloud.config import CloudSettings, MqttSettings
from cloud.ingest import Ingest, Spill, Step, serve
from cloud.live import LiveState, MemoryLiveState, RedisLiveState
from cloud.notify.channels import channels_from_settings
from cloud.notify.dispatch import Dispatcher
from cloud.sites import SiteWatch
from cloud.watch import RuleService

__all__ = ["API_PREFIX", "create_app", "mqtt_tls_context", "open_live_state"]

log = logging.getLogger(__name__)
#: Where the API routes live; the OpenAPI UI is at /docs.
API_PREFIX = "/api/v1"


def mqtt_tls_context(mqtt: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker connection, or ``None`` for plain MQTT."""
    if mqtt.tls is None:
        return None
    context = ssl.create_default_context(cafile=mqtt.tls.ca_file)
    if mqtt.tls.cert_file and mqtt.tls.key_file:
        context.load_cert_chain(mqtt.tls.cert_file, mqtt.tls.key_file)
    return context


async def open_live_state(settings: CloudSettings, stack: contextlib.AsyncExitStack) -> LiveState:
    """Redis live state if configured, else in-process; closed when ``stack`` closes."""
    if settings.state.redis_url is None:
        memory = MemoryLiveState()
        stack.push_async_callback(memory.close)
        return memory
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.state.redis_url)
    stack.push_async_callback(client.aclose)
    await client.ping()
    redis_state = RedisLiveState(client, settings.state.key_prefix)
    stack.push_async_callback(redis_state.close)
    return redis_state


async def _retention_loop(services: Services) -> None:
    retention = services.settings.retention
    while True:
        try:
            await services.store.apply_retention(
                services.clock_ms(),
                positions_days=retention.positions_days,
                alerts_days=retention.alerts_days,
                readings_days=retention.readings_days,
            )
        except Exception:
            log.exception("retention job failed; trying again in %.0f s", retention.interval_s)
        await asyncio.sleep(retention.interval_s)


def _ingest_task(services: Services, steps: tuple[Step, ...]) -> Coroutine[Any, Any, None]:
    if services.rules is not None:
        steps = (services.rules.step, *steps)
    mqtt = services.settings.mqtt
    embedded = isinstance(services.live, MemoryLiveState)
    ingest = Ingest(
        store=services.store,
        live=services.live,
        # In-process state forgets on restart: the archive is then the durable ledger.
        ledger=services.store if embedded else None,
        alerts=services.alerts,
        steps=steps,
        spill=Spill(Path(spill)) if (spill := services.settings.database.spill_path) else None,
    )
    services.ingest = ingest
    return serve(
        ingest, hostname=mqtt.host, port=mqtt.port, share_group=mqtt.share_group,
        identifier=mqtt.client_id, username=mqtt.username, password=mqtt.password,
        tls_context=mqtt_tls_context(mqtt), keepalive_s=mqtt.keepalive_s,
    )  # fmt: skip


def create_app(
    settings: CloudSettings | None = None,
    *,
    store: Store | None = None,
    live: LiveState | None = None,
    steps: tuple[Step, ...] = (),
    run_ingest: bool | None = None,
    run_retention: bool = True,
    clock_ms: Callable[[], int] = wall_clock_ms,
    live_keepalive_s: float = 15.0,
    run_rules_clock: bool = True,
    run_notify: bool | None = None,
) -> FastAPI:
    """The cloud API app.

    Args:
        settings: configuration (defaults: SQLite file, in-process state, local broker).
        store: an open archive to use instead of connecting to ``settings.database``.
        live: a live state to use instead of the one ``settings.state`` describes.
        steps: rule steps the ingest runs on each round of accepted items.
        run_ingest: run the MQTT ingest (default: ``settings.mqtt.enabled``).
        run_retention: run the periodic retention job.
        clock_ms: the clock (UTC epoch ms) used for alert handling and retention.
        live_keepalive_s: keep-alive interval of live streams (each also re-checks the key).
        run_rules_clock: run the rules' clock (windows, stops, trips ending) and the site
            watch's (stale points), each one worker at a time.
        run_notify: run the notification outbox's dispatcher (default:
            ``settings.notify.enabled``; any number of workers may).
    """
    settings = settings or CloudSettings()
    ingest_on = settings.mqtt.enabled if run_ingest is None else run_ingest
    access_log.install()  # no query string (no key a client put in a URL) in the access log

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            archive = store
            if archive is None:
                archive = await Store.connect(
                    settings.database.url, schema=settings.database.schema
                )
                stack.push_async_callback(archive.close)
            state = live if live is not None else await open_live_state(settings, stack)
            alerts = AlertService(archive, state)
            rules = RuleService(
                store=archive, live=state, alerts=alerts, config=settings.rules, clock=clock_ms
            )
            await rules.refresh(force=True)
            stack.push_async_callback(rules.close)
            services = Services(
                store=archive, live=state, settings=settings, clock_ms=clock_ms,
                alerts=alerts, rules=rules, live_keepalive_s=live_keepalive_s,
            )  # fmt: skip
            app.state.services = services
            tasks: list[asyncio.Task[None]] = []
            round_steps = steps
            if settings.sites.enabled:
                sites = SiteWatch(
                    store=archive, live=state, alerts=alerts, config=settings.sites, clock=clock_ms
                )
                app.state.sites = services.sites = sites
                round_steps = (*steps, sites.step)
                if run_rules_clock:
                    tasks.append(asyncio.create_task(sites.run_timer(), name="sites-clock"))
            if run_rules_clock:
                tasks.append(asyncio.create_task(rules.run_timer(), name="rules-clock"))
            if ingest_on:
                ingest_task = _ingest_task(services, round_steps)
                tasks.append(asyncio.create_task(ingest_task, name="ingest"))
            if run_retention:
                tasks.append(asyncio.create_task(_retention_loop(services), name="retention"))
            if settings.notify.enabled if run_notify is None else run_notify:
                notify = Dispatcher(
                    store=archive, channels=channels_from_settings(settings.notify),
                    settings=settings.notify, clock_ms=clock_ms, alerts=alerts,
                )  # fmt: skip
                stack.push_async_callback(notify.aclose)
                app.state.notify = notify
                tasks.append(asyncio.create_task(notify.run(), name="notify"))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    # Every response carries the security headers (CSP...: cloud/api/security.py); Swagger UI
    # at /docs comes from installed files (docs_router), not from a CDN; no ReDoc.
    app = SecureFastAPI(
        tile_sources=settings.http.tile_sources.split(),
        docs_url=None,
        redoc_url=None,
        title="hazwatch cloud",
        summary="Live tracking, archive and alerts for work-safety supervision",
        version="1",
        lifespan=lifespan,
    )
    app.include_router(api_router(), prefix=API_PREFIX)
    app.add_middleware(RequestRules, prefix=API_PREFIX + "/")  # text, sizes, JSON: a 422

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JsonResponse:
        # FastAPI's own handler echoes the input with a strict JSON encoder: a NaN, a lone
        # surrogate or bytes that are not UTF-8 turned the 422 into a 500.
        return JsonResponse({"detail": echo_errors(exc.errors())}, status_code=422)

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, exc: Exception) -> JsonResponse:
        # Starlette's Allow names the methods of the first route of the path only.
        allow = ", ".join(allowed_methods(request.app.router.routes, request.scope))
        headers = dict(getattr(exc, "headers", None) or {}) | ({"Allow": allow} if allow else {})
        return JsonResponse({"detail": "Method Not Allowed"}, status_code=405, headers=headers)

    app.include_router(web_router())  # the map page at /map/
    app.include_router(docs_router())  # Swagger UI at /docs

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness for load balancers and supervisors (no key, so no figures: an admin reads
        them at ``/api/v1/ingest/counters``)."""
        services: Services = app.state.services
        return {"ok": True, "ingest": services.ingest is not None}

    return app
