"""The console's Checks page: what the detectors see now, failing first.

The health-check monitors (status, last result, uptime), the heartbeats and the error-rate detectors
of the policy, read through the same functions as their JSON routes, so the page and the API agree.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from tocsin.auth.pages import Who
from tocsin.monitors.api import monitors_out
from tocsin.monitors.detector_api import error_rates_out, heartbeats_out
from tocsin.runtime import Runtime, runtime
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

FAILING = {"down", "raised"}


@router.get("/checks")
async def checks_page(
    who: Who, rt: Annotated[Runtime, Depends(runtime)], ui: Annotated[Console, Depends(console)]
) -> Response:
    now = rt.clock.now()
    async with rt.db.session() as session:
        monitors = await monitors_out(session, rt.policy, now)
        beats = await heartbeats_out(session, rt.policy)
        rates = await error_rates_out(session, rt.policy)
    # Failing first, then by name: what needs a look is at the top.
    monitors.sort(key=lambda m: (m.status not in FAILING, m.name))
    beats.sort(key=lambda h: (h.status not in FAILING, h.name))
    rates.sort(key=lambda r: (r.status not in FAILING, r.name))
    failing = [c.name for group in (monitors, beats, rates) for c in group if c.status in FAILING]
    return ui.page(
        "checks.html",
        who=who,
        active="checks",
        now=now,
        monitors=monitors,
        heartbeats=beats,
        rates=rates,
        failing=failing,
    )
