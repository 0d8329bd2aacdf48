"""build_channels from settings, and the sender loop's wake-up."""

from __future__ import annotations

import asyncio

import pytest

from tocsin.config import Settings
from tocsin.core.bus import Bus
from tocsin.db.engine import Database
from tocsin.notify.channels.base import DeliveryError, Unconfigured
from tocsin.notify.channels.email import EmailChannel
from tocsin.notify.channels.slack import SlackChannel
from tocsin.notify.jobs import build_channels, run_sender
from tocsin.notify.models import OutboxMessage


def test_unset_channels_fail_saying_what_to_set() -> None:
    channels = build_channels(Settings(database_url="sqlite://"), Database("sqlite://"))
    assert set(channels) == {"console", "slack", "email", "webhook"}
    assert isinstance(channels["slack"], Unconfigured) and isinstance(channels["email"], Unconfigured)
    with pytest.raises(DeliveryError) as refused:
        asyncio.run(channels["email"].send(OutboxMessage(), None))
    assert refused.value.message == "email is not configured (set TOCSIN_SMTP_URL)"
    assert not refused.value.retryable


def test_configured_channels() -> None:
    settings = Settings(
        database_url="sqlite://", slack_token="xoxb-1", smtp_url="smtps://u:p@mail.test", webhook_secret="s"
    )
    channels = build_channels(settings, Database("sqlite://"))
    assert isinstance(channels["slack"], SlackChannel)
    assert isinstance(channels["email"], EmailChannel) and channels["email"].server.implicit_tls


def test_a_bad_smtp_url_stops_the_start() -> None:
    with pytest.raises(ValueError, match="not an SMTP URL"):
        build_channels(Settings(database_url="sqlite://", smtp_url="mail.test:25"), Database("sqlite://"))


class Counting:
    """A stand-in sender: counts ticks; has nothing to send."""

    def __init__(self) -> None:
        self.ticks = 0
        self.ticked = asyncio.Event()

    async def tick(self, limit: int = 100) -> int:
        self.ticks += 1
        self.ticked.set()
        return 0


async def test_a_publish_wakes_the_sender_before_the_idle_timeout() -> None:
    bus, sender = Bus(), Counting()
    loop = asyncio.create_task(run_sender(sender, bus, idle=3600))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(sender.ticked.wait(), 10)
        sender.ticked.clear()
        bus.publish("outbox")
        await asyncio.wait_for(sender.ticked.wait(), 10)
        assert sender.ticks == 2
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
