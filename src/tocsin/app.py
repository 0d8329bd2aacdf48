"""create_app(settings) -> the ASGI app: every domain's routes, one Runtime."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from tocsin import __version__
from tocsin.alerts import api as alerts_api
from tocsin.alerts import ingest, integration_pages
from tocsin.alerts import jobs as alert_jobs
from tocsin.alerts import pages as alert_pages
from tocsin.alerts.frontdoor import FrontDoor
from tocsin.auth import api as auth_api
from tocsin.auth import user_pages
from tocsin.config import Settings
from tocsin.core import http_errors
from tocsin.core.clock import Clock, SystemClock
from tocsin.core.limits import BodyLimitMiddleware
from tocsin.db.engine import Database
from tocsin.engine import jobs as engine_jobs
from tocsin.health import api as health_api
from tocsin.health.metrics import MetricsMiddleware
from tocsin.incidents import api as incidents_api
from tocsin.incidents import jobs as incident_jobs
from tocsin.monitors import api as monitors_api
from tocsin.monitors import detector_api, detector_jobs
from tocsin.monitors import jobs as monitor_jobs
from tocsin.monitors import pages as monitor_pages
from tocsin.notify import api as notify_api
from tocsin.notify import jobs as notify_jobs
from tocsin.oncall import api as oncall_api
from tocsin.oncall import jobs as oncall_jobs
from tocsin.oncall import pages as oncall_pages
from tocsin.oncall import response_api
from tocsin.policy.loader import default_policy, load_policy
from tocsin.policy.models import Policy
from tocsin.reports import api as reports_api
from tocsin.reports import jobs as report_jobs
from tocsin.reports import pages as report_pages
from tocsin.reports import smtp as report_smtp
from tocsin.runtime import Runtime
from tocsin.statuspage import setup as statuspage
from tocsin.web import pages
from tocsin.web.direct import Table


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    db: Database | None = None,
) -> Runtime:
    """Everything a process needs, from settings; tests pass their own clock, policy or database."""
    if policy is None:
        policy = load_policy(settings.policy) if settings.policy else default_policy()
    return Runtime(
        settings=settings,
        db=db or Database(settings.database_url, shared=settings.workers > 1),
        clock=clock or SystemClock(),
        policy=policy,
    )


def register_engine(rt: Runtime) -> None:
    """The response engine: timer handlers, the timer worker and the outbox sender (`tocsin worker` runs only this)."""
    oncall_jobs.register(rt)
    incident_jobs.register(rt)
    engine_jobs.register(rt)
    notify_jobs.register(rt)


class App(FastAPI):
    """FastAPI with the front door ahead of its whole stack, FastAPI's own middleware included."""

    front_door: FrontDoor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self.front_door
        route = door.route(scope) if door is not None and scope["type"] == "http" else None
        if route is None or door is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # handlers find the runtime through request.app, as the API's do
        await door.serve(route, scope, receive, send)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    rt = runtime or build_runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mail = await report_smtp.start(rt)  # before the loops: a taken port fails the start cleanly
        if rt.settings.background:
            rt.start()
        yield
        if mail is not None:
            mail.close()
        await rt.stop()
        await rt.ingestor.close()
        await rt.db.dispose()

    app = App(
        title="Tocsin",
        version=__version__,
        description="Self-hosted incident response: the runbook as software.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    register_engine(rt)
    alert_jobs.register(rt)
    monitor_jobs.register(rt)
    report_jobs.register(rt)
    detector_jobs.register(rt)
    http_errors.install(app)
    statuspage.install(app, rt)
    app.state.direct = direct = Table([*ingest.routes, *detector_api.routes], rt, rt.settings.max_body_bytes)
    fast_routes = [*direct.starlette_routes(), *statuspage.routes]
    app.router.routes.extend(fast_routes)  # also reachable through the stack, e.g. for OpenAPI tooling
    for router in (
        health_api.router,
        auth_api.router,
        incidents_api.router,
        response_api.router,
        response_api.pages_router,
        notify_api.router,
        alerts_api.router,
        detector_api.router,
        monitors_api.router,
        reports_api.router,
        oncall_api.router,
        pages.router,
        report_pages.router,
        oncall_pages.router,
        alert_pages.router,
        integration_pages.router,
        user_pages.router,
        monitor_pages.router,
        *statuspage.routers,
    ):
        app.include_router(router)
    pages.mount_static(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=rt.settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=rt.metrics)
    app.front_door = FrontDoor(fast_routes, rt.metrics)
    return app


def serve_app() -> FastAPI:
    """The app of one `tocsin serve` process, from the TOCSIN_* settings (uvicorn's factory with --workers)."""
    app = create_app(Settings())
    # What is loaded now (modules, routes, the policy: ~230,000 objects) lives as long as the process.
    # Frozen, it is left out of the collector's full passes, each of which would otherwise stall every
    # request in flight for about 0.1 s under load.
    gc.collect()
    gc.freeze()
    # A young generation of 50,000 objects, not 700. An ingest request's alerts wait for their group
    # commit, so at the default every young pass promoted them: at 100 alerts a request the old
    # generation filled with 50,000 live alerts, signals and outcomes, and full passes (about two a
    # second, 55 ms each, collecting nothing) took 11% of the time, young and middle passes 7% more.
    # Measured: 12-19% more alerts a second at 100 alerts per request, the same at one.
    gc.set_threshold(50_000, 20, 100)
    return app
