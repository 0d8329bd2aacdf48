"""Slack through slack_sdk against a real local server that speaks Slack's Web API shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tocsin.db.engine import Database
from tocsin.incidents import service as incidents
from tocsin.incidents import timeline
from tocsin.incidents.schemas import IncidentCreate
from tocsin.notify import service
from tocsin.notify.channels.slack import SlackChannel
from tocsin.notify.models import OutboxMessage
from tocsin.notify.sender import Sender
from tocsin.policy.loader import default_policy
from tocsin.testing import FakeClock, running_server

TOKEN = "xoxb-test-token"


class FakeSlack:
    """auth.test, chat.postMessage, chat.update, conversations.create/invite/list, as Slack answers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.channels = {"alerts": "C0ALERTS"}
        self.members: dict[str, set[str]] = {}
        self.rate_limited = 0  # answer this many calls with 429 first
        self.ts = 1700000000

    async def api(self, request: Request) -> Response:
        method = request.path_params["method"]
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if request.headers.get("content-type", "").startswith("application/json"):
            args: dict[str, Any] = await request.json()
        else:
            args = dict(await request.form())
        args.update(request.query_params)  # slack_sdk sends some methods' arguments in the query
        if isinstance(args.get("blocks"), str):
            args["blocks"] = json.loads(args["blocks"])
        self.calls.append((method, args))
        if self.rate_limited:
            self.rate_limited -= 1
            return JSONResponse(
                {"ok": False, "error": "ratelimited"}, status_code=429, headers={"Retry-After": "30"}
            )
        handler = getattr(self, method.replace(".", "_"), None)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"})
        return JSONResponse(handler(args))

    def auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": "UTOCSIN", "team": "Haus"}

    def _channel(self, ref: str) -> str | None:
        if ref.startswith("#"):
            return self.channels.get(ref[1:])
        return ref if ref in self.channels.values() or ref.startswith(("U", "D")) else None

    def chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"])
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        self.ts += 1
        return {"ok": True, "channel": channel, "ts": f"{self.ts}.000100", "message": {"text": args["text"]}}

    def chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": args["channel"], "ts": args["ts"], "text": args["text"]}

    def conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        if args["name"] in self.channels:
            return {"ok": False, "error": "name_taken"}
        self.channels[args["name"]] = f"C{len(self.channels):08d}"
        return {"ok": True, "channel": {"id": self.channels[args["name"]], "name": args["name"]}}

    def conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        listed = [{"id": i, "name": n} for n, i in self.channels.items()]
        return {"ok": True, "channels": listed, "response_metadata": {"next_cursor": ""}}

    def conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        members = self.members.setdefault(args["channel"], set())
        user = args["users"]
        if not user.startswith("U"):
            return {"ok": False, "error": "user_not_found"}
        if user in members:
            return {"ok": False, "error": "already_in_channel"}
        members.add(user)
        return {"ok": True, "channel": {"id": args["channel"]}}

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/{method}", self.api, methods=["GET", "POST"])])


@pytest.fixture
def slack() -> FakeSlack:
    return FakeSlack()


@pytest.fixture
def base_url(slack: FakeSlack) -> Iterator[str]:
    with running_server(slack.app()) as url:
        yield f"{url}/api/"


def sender(db: Database, clock: FakeClock, base_url: str, token: str = TOKEN) -> Sender:
    return Sender(db, clock, {"slack": SlackChannel(token, base_url=base_url)}, jitter=lambda: 0.0)


async def queue(db: Database, clock: FakeClock, key: str, target: str, **fields: Any) -> None:
    payload = fields.pop("payload", {"text": key})
    async with db.transaction() as session:
        await service.enqueue(
            session,
            clock.now(),
            channel="slack",
            target=target,
            kind="announce",
            key=key,
            payload=payload,
            **fields,
        )


async def stored(db: Database, key: str) -> OutboxMessage:
    async with db.session() as session:
        found = await service.by_key(session, key)
    assert found is not None
    return found


async def test_the_fake_answers_like_slack(slack: FakeSlack, base_url: str) -> None:
    channel = SlackChannel(TOKEN, base_url=base_url)
    assert (await channel.client.auth_test())["user_id"] == "UTOCSIN"


async def test_announcement_posts_once_then_updates_in_place(
    db: Database, clock: FakeClock, slack: FakeSlack, base_url: str
) -> None:
    out = sender(db, clock, base_url)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*INC-1* P1"}}]
    await queue(
        db, clock, "a1", "#alerts", thread="inc-1", payload={"text": "INC-1: 1 alert", "blocks": blocks}
    )
    await out.tick()
    await queue(db, clock, "a2", "#alerts", thread="inc-1", payload={"text": "INC-1: 5 alerts"})
    await out.tick()
    assert [(m, a["channel"], a["text"]) for m, a in slack.calls] == [
        ("chat.postMessage", "#alerts", "INC-1: 1 alert"),
        ("chat.update", "C0ALERTS", "INC-1: 5 alerts"),
    ]
    assert slack.calls[0][1]["blocks"] == blocks
    assert slack.calls[1][1]["ts"] == (await stored(db, "a1")).result["ts"]  # type: ignore[index]
    assert (await stored(db, "a2")).status == "sent"


async def test_direct_message_to_a_user_id(
    db: Database, clock: FakeClock, slack: FakeSlack, base_url: str
) -> None:
    await queue(db, clock, "dm", "U0ADA", payload={"text": "You are paged: INC-1"})
    await sender(db, clock, base_url).tick()
    assert slack.calls == [("chat.postMessage", {"channel": "U0ADA", "text": "You are paged: INC-1"})]


async def test_incident_channel_is_created_and_responders_invited(
    db: Database, clock: FakeClock, slack: FakeSlack, base_url: str
) -> None:
    payload = {"text": "create #incident-2026-11-26-checkout", "op": "create_channel",
               "name": "incident-2026-11-26-checkout", "invite": ["U0ADA", "U0BOB", "nobody"]}  # fmt: skip
    await queue(db, clock, "ch", "slack", payload=payload)
    await sender(db, clock, base_url).tick()
    made = await stored(db, "ch")
    channel_id = slack.channels["incident-2026-11-26-checkout"]
    assert made.status == "sent"
    assert made.result == {
        "channel_id": channel_id, "name": "incident-2026-11-26-checkout",
        "invited": ["U0ADA", "U0BOB"], "not_invited": {"nobody": "user_not_found"},
    }  # fmt: skip
    assert slack.members[channel_id] == {"U0ADA", "U0BOB"}
    # Created again (a re-run after a crash): the name is taken, so it is looked up and reused.
    await queue(db, clock, "ch-again", "slack", payload=payload)
    await sender(db, clock, base_url).tick()
    again = await stored(db, "ch-again")
    assert again.status == "sent" and again.result["channel_id"] == channel_id  # type: ignore[index]
    assert again.result["invited"] == ["U0ADA", "U0BOB"]  # type: ignore[index]


async def test_refused_token_fails_without_retry_and_tells_the_timeline(
    db: Database, clock: FakeClock, slack: FakeSlack, base_url: str
) -> None:
    async with db.transaction() as session:
        incident = await incidents.declare(
            session, clock, default_policy(), "ada", IncidentCreate(title="Checkout down", severity="P1")
        )
    await queue(db, clock, "bad-token", "#alerts", incident_id=incident.id)
    await sender(db, clock, base_url, token="xoxb-revoked").tick()
    failed = await stored(db, "bad-token")
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.last_error is not None and failed.last_error.startswith("Slack answered invalid_auth")
    async with db.session() as session:
        events = await timeline.events(session, incident.id)
    (note,) = [e.data for e in events if e.kind == "notification"]
    assert note["status"] == "failed" and "invalid_auth" in note["error"]


async def test_unknown_channel_fails(db: Database, clock: FakeClock, slack: FakeSlack, base_url: str) -> None:
    await queue(db, clock, "nowhere", "#nowhere")
    await sender(db, clock, base_url).tick()
    failed = await stored(db, "nowhere")
    assert failed.status == "failed" and failed.last_error == "Slack answered channel_not_found"


async def test_rate_limit_is_retried_after_retry_after(
    db: Database, clock: FakeClock, slack: FakeSlack, base_url: str
) -> None:
    slack.rate_limited = 1
    await queue(db, clock, "busy", "#alerts")
    out = sender(db, clock, base_url)
    await out.tick()
    waiting = await stored(db, "busy")
    assert waiting.status == "pending" and waiting.last_error == "Slack answered ratelimited"
    assert (waiting.next_attempt_at - clock.now()).total_seconds() == 30
    clock.advance(seconds=30)
    await out.tick()
    assert (await stored(db, "busy")).status == "sent"
    assert [m for m, _ in slack.calls] == ["chat.postMessage", "chat.postMessage"]


async def test_slack_down_is_retried(db: Database, clock: FakeClock) -> None:
    await queue(db, clock, "down", "#alerts")
    await sender(db, clock, "http://127.0.0.1:9/api/").tick()  # the discard port: nothing listens
    waiting = await stored(db, "down")
    assert waiting.status == "pending" and waiting.last_error is not None
    assert waiting.last_error.startswith("Slack could not be reached")
