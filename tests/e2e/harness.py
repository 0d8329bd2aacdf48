"""What the browser tests share: Debian's Chromium, free ports, a user to sign in as, and a real uvicorn
server of the app."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from tocsin.auth import service as auth
from tocsin.auth.roles import Role
from tocsin.core.clock import SystemClock
from tocsin.db.engine import Database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
STARTUP_SECONDS = 30
PASSWORD = "correct horse battery"


async def user_with_token(database_url: str, role: Role = Role.commander, display_name: str = "") -> str:
    """The user "ada", who signs in with PASSWORD, in `role`; returns an API token of hers."""
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            clock = SystemClock()
            user = await auth.create_user(
                session, clock, name="ada", role=role, password=PASSWORD, display_name=display_name
            )
            return await auth.create_token(session, clock, user, "e2e")
    finally:
        await db.dispose()


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def seed_policy_file(path: Path, extra: str) -> Path:
    """The built-in policy with `extra` sections (people, teams) in place of its empty ones."""
    policy = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    policy = re.sub(r"^(people|teams): \[\]\n", "", policy, flags=re.M) + extra
    path.write_text(policy, encoding="utf-8")
    return path


def sign_in(page: Any) -> None:
    """On the sign-in form: sign in as "ada" (`user_with_token`)."""
    page.get_by_label("Name").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


@contextmanager
def browser_page(playwright: Any, width: int = 1280, height: int = 900) -> Iterator[tuple[Any, list[str]]]:
    """A page in Debian's Chromium, and the list its console errors and page errors are collected in."""
    problems: list[str] = []
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(10_000)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        yield page, problems
    finally:
        browser.close()


@contextmanager
def uvicorn_server(tmp: Path, env: dict[str, str], port: int | None = None) -> Iterator[str]:
    """`tocsin.app:create_app` under uvicorn with `env` (and no other TOCSIN_ variables); its URL once healthy."""
    port = port or free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")} | env
    command = [sys.executable, "-m", "uvicorn", "--factory", "tocsin.app:create_app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--timeout-graceful-shutdown", "2"]
    url = f"http://127.0.0.1:{port}"
    with (tmp / "server.log").open("w") as log:
        proc = subprocess.Popen(command, env=full, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                assert proc.poll() is None, (tmp / "server.log").read_text()
                try:
                    if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
