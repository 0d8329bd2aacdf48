"""Links Tocsin puts in subscriber messages: the page, and signed confirm and unsubscribe links."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.engine import secrets
from tocsin.runtime import Runtime


@dataclass(frozen=True)
class Links:
    """The public base URL (no trailing slash) and the key that signs subscriber links."""

    base: str
    key: bytes

    @property
    def page(self) -> str:
        return f"{self.base}/status"

    def token(self, action: str, subscriber_id: int) -> str:
        return secrets.sign(self.key, "status-subscriber", action, str(subscriber_id))[:40]

    def valid(self, action: str, subscriber_id: int, token: str) -> bool:
        return hmac.compare_digest(self.token(action, subscriber_id), token)

    def confirm(self, subscriber_id: int) -> str:
        return f"{self.base}/status/subscribers/{subscriber_id}/confirm?token={self.token('confirm', subscriber_id)}"

    def unsubscribe(self, subscriber_id: int) -> str:
        return (
            f"{self.base}/status/subscribers/{subscriber_id}/unsubscribe"
            f"?token={self.token('unsubscribe', subscriber_id)}"
        )


def base_url(rt: Runtime) -> str:
    """TOCSIN_PUBLIC_URL, else the address Tocsin listens on."""
    return (rt.settings.public_url or f"http://{rt.settings.host}:{rt.settings.port}").rstrip("/")


async def links(rt: Runtime) -> Links:
    """The links, reading (or making) the signing key in a session of its own."""
    return Links(base_url(rt), await secrets.signing_key(rt.db, rt.settings.secret_key))


async def links_in(session: AsyncSession, rt: Runtime) -> Links:
    """The links, reading (or making: two processes at once make one) the signing key within a
    transaction already open (SQLite has one writer)."""
    return Links(base_url(rt), await secrets.signing_key_in(session, rt.settings.secret_key))
