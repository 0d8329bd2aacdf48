"""The web console: every domain's HTML routes, its static files and its template environment."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from tocsin.auth import pages as auth_pages
from tocsin.incidents import pages as incident_pages
from tocsin.runtime import Runtime
from tocsin.web import errors
from tocsin.web.render import STATIC, Console

router = APIRouter(include_in_schema=False)
router.include_router(auth_pages.router)
router.include_router(incident_pages.router)


def mount_static(app: FastAPI) -> None:
    """Serve /static and set up the console's templates for the app's policy (once, at create_app)."""
    rt: Runtime = app.state.runtime
    ui = Console(rt.policy)
    app.state.console = ui
    errors.install(app, ui)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
