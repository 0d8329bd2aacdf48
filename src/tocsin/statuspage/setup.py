"""How the app takes in the status page: its front-door routes, its routers, its cache and its loops."""

from __future__ import annotations

from fastapi import FastAPI

from tocsin.runtime import Runtime
from tocsin.statuspage import api, console, jobs, pages, public
from tocsin.statuspage.cache import StatusCache
from tocsin.statuspage.links import base_url
from tocsin.statuspage.render import Places, Renderer

routes = public.routes  # answered by the front door, from memory
routers = (api.router, pages.router, console.router)
LIVE = Places(base="/status", subscribe="/status/subscribe", report="/report")


def install(app: FastAPI, rt: Runtime) -> None:
    """Build the render cache (app.state.status_cache) and its ready answers (app.state.ready_answers),
    and register the background loops."""
    renderer = Renderer(rt.policy.timezone, LIVE)
    app.state.status_cache = cache = StatusCache(
        rt.db, rt.clock, rt.policy, renderer, lambda: f"{base_url(rt)}/status"
    )
    app.state.ready_answers = public.answers(cache, rt.metrics)  # for tocsin serve's protocol
    rt.closers["status-cache"] = cache.close
    jobs.register(rt)
