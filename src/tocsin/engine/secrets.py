"""The key that signs links Tocsin sends (acknowledge from email, calendar feeds).

TOCSIN_SECRET_KEY when set; otherwise a random key this installation makes once and keeps in its
database, so every process of a scale-out shares it and links survive restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.db.engine import Database
from tocsin.engine.models import InstanceSecret

NAME = "signing"


async def signing_key_in(session: AsyncSession, configured: str | None = None) -> bytes:
    """The signing key, read (or made) within the caller's transaction."""
    if configured:
        return hashlib.sha256(b"tocsin signing\0" + configured.encode()).digest()
    value = await session.scalar(select(InstanceSecret.value).where(InstanceSecret.name == NAME))
    if value is None:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        await session.execute(
            insert(InstanceSecret).values(name=NAME, value=secrets.token_hex(32)).on_conflict_do_nothing()
        )
        value = await session.scalar(select(InstanceSecret.value).where(InstanceSecret.name == NAME))
    assert value is not None
    return bytes.fromhex(value)


async def signing_key(db: Database, configured: str | None = None) -> bytes:
    """The signing key: derived from the configured secret, else the stored one (made on first use)."""
    if configured:
        return hashlib.sha256(b"tocsin signing\0" + configured.encode()).digest()
    async with db.session() as session:
        value = await session.scalar(select(InstanceSecret.value).where(InstanceSecret.name == NAME))
    if value is None:
        try:
            async with db.transaction() as session:
                session.add(InstanceSecret(name=NAME, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another process made it first: use theirs
        async with db.session() as session:
            value = await session.scalar(select(InstanceSecret.value).where(InstanceSecret.name == NAME))
    assert value is not None
    return bytes.fromhex(value)


def sign(key: bytes, *parts: str) -> str:
    """A hex HMAC-SHA256 over the parts, separated so ("ab", "c") and ("a", "bc") differ."""
    return hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, signature: str, *parts: str) -> bool:
    return hmac.compare_digest(sign(key, *parts), signature)
