"""The interface every channel implements, and the error a failed delivery raises."""

from __future__ import annotations

from typing import Any, Protocol

from tocsin.notify.models import OutboxMessage


class DeliveryError(Exception):
    """A delivery that did not happen: `retryable` says whether trying again later may help.

    `retry_after` (seconds) is the receiver's own request to wait (Slack's or a webhook's
    Retry-After), used when it is longer than the sender's backoff.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class Channel(Protocol):
    """Delivers one outbox message; returns what to keep as the row's `result`.

    `previous` is the result of the first message sent on the same thread (channel and target), or
    None: Slack updates that post instead of posting again.
    """

    name: str

    async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]: ...


class Unconfigured:
    """Stands in for a channel without settings: every message fails at once, saying what to set."""

    def __init__(self, name: str, setting: str) -> None:
        self.name = name
        self.setting = setting

    async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
        raise DeliveryError(f"{self.name} is not configured (set {self.setting})", retryable=False)
