"""Outgoing webhooks: the payload as a JSON POST, signed so receivers can tell it is Tocsin's.

Headers: `X-Tocsin-Timestamp` (unix seconds), `X-Tocsin-Signature: v1=<hex>` where hex is the
HMAC-SHA256 of `<timestamp>.<raw body>` keyed by the webhook secret, and `Idempotency-Key` (the same
on every retry of one message, so a receiver can drop a repeat). A receiver checks the signature and
refuses timestamps older than a few minutes: `verify_signature` does both.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import certifi
import httpx
import orjson

from tocsin import __version__
from tocsin.core.clock import Clock
from tocsin.notify.channels.base import DeliveryError
from tocsin.notify.models import OutboxMessage


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds of CPU: do it once per process, not per message.
    return ssl.create_default_context(cafile=certifi.where())


TOLERANCE = timedelta(seconds=300)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Tocsin-Signature` header value for a body sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify_signature(
    secret: bytes | str,
    timestamp: str,
    body: bytes,
    header: str,
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> bool:
    """True when `header` signs `body` at `timestamp` with `secret` and `timestamp` is within
    `tolerance` of `now` (a replayed old request fails). The header may list several `v1=`
    signatures, comma-separated (secret rotation)."""
    key = secret.encode() if isinstance(secret, str) else secret
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now.timestamp() - int(timestamp)) > tolerance.total_seconds():
        return False
    expected = signature(key, timestamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in header.split(","))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class WebhookChannel:
    """POSTs to the target URL. The secret is bytes, or a coroutine that finds it on first use."""

    name = "webhook"

    def __init__(
        self,
        secret: bytes | Callable[[], Awaitable[bytes]],
        clock: Clock,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._secret = secret
        self.clock = clock
        self.timeout = timeout
        self.transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        """One pooled client per event loop: a page to a receiver already connected to needs no new connection."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self.transport, verify=_tls())
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    async def _key(self) -> bytes:
        if not isinstance(self._secret, bytes):
            self._secret = await self._secret()
        return self._secret

    async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
        body = orjson.dumps(message.payload)
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"tocsin/{__version__}",
            "X-Tocsin-Timestamp": timestamp,
            "X-Tocsin-Signature": signature(await self._key(), timestamp, body),
            "Idempotency-Key": message.idempotency_key,
            "X-Tocsin-Kind": message.kind,
        }
        if message.incident_id is not None:
            headers["X-Tocsin-Incident"] = str(message.incident_id)
        try:
            response = await self._http().post(message.target, content=body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            raise DeliveryError(f"bad webhook URL: {error}", retryable=False) from error
        except httpx.TimeoutException as error:
            raise DeliveryError(f"no answer within {self.timeout:g} s", retryable=True) from error
        except httpx.HTTPError as error:
            raise DeliveryError(
                f"connection failed: {error or type(error).__name__}", retryable=True
            ) from error
        status = response.status_code
        if 200 <= status < 300:
            return {"status_code": status}
        snippet = response.text[:200].strip()
        detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        if status == 429 or status >= 500:
            raise DeliveryError(detail, retryable=True, retry_after=_retry_after(response))
        raise DeliveryError(detail, retryable=False)
