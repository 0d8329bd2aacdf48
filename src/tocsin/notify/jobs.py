"""Background work of the notify domain: the outbox sender loop and the outbox gauges."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Gauge

from tocsin.config import Settings
from tocsin.core.bus import Bus
from tocsin.core.clock import Clock, SystemClock
from tocsin.db.engine import Database
from tocsin.engine import secrets
from tocsin.notify import service
from tocsin.notify.channels.base import Channel, Unconfigured
from tocsin.notify.channels.console import ConsoleChannel
from tocsin.notify.channels.email import EmailChannel, SmtpServer
from tocsin.notify.channels.slack import SlackChannel
from tocsin.notify.channels.webhook import WebhookChannel
from tocsin.notify.sender import Sender
from tocsin.runtime import Runtime

log = logging.getLogger("tocsin.notify")

TOPIC = "outbox"
IDLE = 1.0  # seconds the sender waits for a wake-up before looking again
BATCH = 100


def build_channels(settings: Settings, db: Database, clock: Clock | None = None) -> dict[str, Channel]:
    """Every channel, from settings; one without settings fails its messages saying what to set.

    Raises ValueError for a setting that cannot be read (TOCSIN_SMTP_URL), so a start fails early.
    """
    channels: dict[str, Channel] = {"console": ConsoleChannel()}
    if settings.slack_token:
        channels["slack"] = SlackChannel(settings.slack_token, base_url=settings.slack_api_url)
    else:
        channels["slack"] = Unconfigured("slack", "TOCSIN_SLACK_TOKEN")
    if settings.smtp_url:
        channels["email"] = EmailChannel(SmtpServer.from_url(settings.smtp_url), settings.mail_from)
    else:
        channels["email"] = Unconfigured("email", "TOCSIN_SMTP_URL")
    configured = settings.webhook_secret

    async def webhook_key() -> bytes:
        if configured:
            return configured.encode()
        # No secret set: one derived from the instance's signing key, the same in every process.
        key = await secrets.signing_key(db, settings.secret_key)
        return secrets.sign(key, "webhook").encode()

    channels["webhook"] = WebhookChannel(
        webhook_key, clock or SystemClock(), timeout=settings.webhook_timeout
    )
    return channels


async def run_sender(sender: Sender, bus: Bus, *, idle: float = IDLE, batch: int = BATCH) -> None:
    """Send forever: a tick, then wait for a wake-up (or `idle` seconds) unless there is more to do.

    The wake-up is armed before the tick, so a message queued while a tick runs is not left for the
    idle timeout. Failures (the database away) back off up to 30 s and never end the loop.
    """
    failures = 0
    while True:
        woken = asyncio.ensure_future(bus.wait(TOPIC, idle))
        try:
            await asyncio.sleep(0)  # let the waiter subscribe
            sent = await sender.tick(batch)
            failures = 0
            if sent < batch:
                await woken
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            log.exception("the outbox sender failed (%d in a row)", failures)
            await asyncio.sleep(min(2**failures, 30))
        finally:
            woken.cancel()


_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()


def _gauges(rt: Runtime) -> Callable[[], Awaitable[None]]:
    registry = rt.metrics.registry
    gauge = _GAUGES.get(registry)
    if gauge is None:  # one per registry: an app built twice on one runtime registers it once
        gauge = Gauge("tocsin_outbox_messages", "Outbox messages by status", ["status"], registry=registry)
        _GAUGES[registry] = gauge

    async def update() -> None:
        async with rt.db.session() as session:
            counts = await service.totals(session)
        for status, count in counts.items():
            gauge.labels(status).set(count)

    return update


def register(rt: Runtime) -> None:
    """Add the sender and the gauges to the runtime's loops."""
    channels = build_channels(rt.settings, rt.db, rt.clock)
    sender = Sender(rt.db, rt.clock, channels, rt.bus, give_up_after=rt.settings.delivery_give_up_after)
    rt.loops.add("outbox", 1.0, lambda: run_sender(sender, rt.bus))
    rt.commit_hooks["outbox"] = sender.claim_new  # while it runs, messages for now leave at commit
    rt.closers["outbox"] = sender.close
    rt.loops.add("outbox-gauges", 15.0, _gauges(rt))
