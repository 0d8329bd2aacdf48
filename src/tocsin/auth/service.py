"""The only code that writes users, tokens and sessions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.auth.models import ApiToken, User, WebSession
from tocsin.auth.roles import Role
from tocsin.auth.schemas import UserCreate
from tocsin.core.clock import Clock
from tocsin.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from tocsin.core.ids import digest, new_secret

_hasher = PasswordHasher()
# Verifying against this keeps the timing of "no such user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("tocsin-timing-equaliser")


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user and their role."""

    user_id: int
    name: str
    role: Role

    def require(self, role: Role) -> None:
        if self.role < role:
            raise Forbidden(f"this needs the {role.name} role; {self.name} is a {self.role.name}")


@dataclass(frozen=True)
class Bootstrap:
    """What the first start created: shown once."""

    user: str
    token: str
    password: str


def _principal(user: User) -> Principal:
    return Principal(user.id, user.name, Role.parse(user.role))


async def create_user(
    session: AsyncSession,
    clock: Clock,
    *,
    name: str,
    role: Role,
    password: str | None = None,
    display_name: str = "",
    email: str | None = None,
) -> User:
    if await session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} exists", field="name")
    user = User(
        name=name,
        display_name=display_name or name,
        email=email,
        role=role.name,
        password_hash=_hasher.hash(password) if password else None,
        created_at=clock.now(),
    )
    session.add(user)
    await session.flush()
    return user


async def create_user_from(session: AsyncSession, clock: Clock, body: UserCreate) -> User:
    """A new user as the API's body and the console's form describe one."""
    return await create_user(
        session,
        clock,
        name=body.name,
        role=Role.parse(body.role),
        password=body.password,
        display_name=body.display_name,
        email=body.email,
    )


async def list_users(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.name)))


async def create_token(session: AsyncSession, clock: Clock, user: User, name: str) -> str:
    """Create an API token for `user`; the clear value is returned once and only its hash is stored.
    Not for a disabled user: the token would be refused (409, naming `user`)."""
    if user.disabled_at is not None:
        raise Conflict(
            f"user {user.name!r} is disabled; enable them first (tocsin user enable)", field="user"
        )
    token = new_secret("tsn")
    session.add(ApiToken(user_id=user.id, name=name, token_hash=digest(token), created_at=clock.now()))
    await session.flush()
    return token


async def get_user(session: AsyncSession, name: str, *, field: str = "user") -> User:
    """The user called `name`; a 404 naming `field` (where the caller read the name) when none is."""
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name!r}", field=field)
    return user


async def list_tokens(
    session: AsyncSession, by: Principal, *, user: str | None = None, everyone: bool = False
) -> list[tuple[ApiToken, str]]:
    """(token, its user's name) in creation order: `by`'s own, one user's or everyone's (admins)."""
    if user is not None and everyone:
        raise InvalidInput("give either user or all=true, not both", field="all")
    query = select(ApiToken, User.name).join(User, ApiToken.user_id == User.id).order_by(ApiToken.id)
    if everyone:
        by.require(Role.admin)
    elif user is not None and user != by.name:
        by.require(Role.admin)
        query = query.where(ApiToken.user_id == (await get_user(session, user)).id)
    else:
        query = query.where(ApiToken.user_id == by.user_id)
    return [(token, name) for token, name in await session.execute(query)]


async def revoke_token(
    session: AsyncSession, clock: Clock, by: Principal, token_id: int
) -> tuple[ApiToken, str]:
    """Refuse a token from now on: one's own, or (admins) anyone's. Returns it with its user's name."""
    found = (
        await session.execute(
            select(ApiToken, User.name)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.id == token_id)
            .with_for_update(of=ApiToken)  # two revokes at once: the second sees the first's
        )
    ).one_or_none()
    # Another user's token is "not found" to a non-admin, so ids cannot be probed for existence.
    if found is None or (found[0].user_id != by.user_id and by.role < Role.admin):
        raise NotFound(f"no token {token_id}", field="token_id")
    token, name = found
    if token.revoked_at is not None:
        raise Conflict(
            f"token {token_id} was revoked already, at {token.revoked_at.isoformat()}", field="token_id"
        )
    token.revoked_at = clock.now()
    return token, name


async def disable_user(session: AsyncSession, clock: Clock, by: Principal, name: str) -> User:
    """Refuse the user's tokens and sign-in, and end their console sessions; the last admin stays.

    Disabling again keeps the first time. The sessions are deleted, not just refused, so enabling the
    user later does not bring back a browser signed in before.
    """
    user = await get_user(session, name, field="name")
    if user.id == by.user_id:
        raise Conflict(f"{name} cannot disable themselves; another admin must", field="name")
    if user.role == Role.admin.name and user.disabled_at is None:
        # Locked, so two admins disabling each other at once cannot both succeed (PostgreSQL; SQLite
        # writers take turns anyway).
        admins = await session.scalars(
            select(User.id)
            .where(User.role == Role.admin.name, User.disabled_at.is_(None))
            .order_by(User.id)  # one locking order, so the two wait instead of deadlocking
            .with_for_update()
        )
        if set(admins) <= {user.id}:
            raise Conflict(f"{name} is the last enabled admin; Tocsin needs one", field="name")
    if user.disabled_at is None:
        user.disabled_at = clock.now()
    await session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    return user


async def enable_user(session: AsyncSession, name: str) -> User:
    """Accept a disabled user's tokens and password again (their ended console sessions stay ended)."""
    user = await get_user(session, name, field="name")
    user.disabled_at = None
    return user


# A token's last use is written at most this often: one write in a while, not one a request.
LAST_USED_EVERY = timedelta(minutes=10)


async def authenticate_token(session: AsyncSession, token: str) -> Principal:
    return (await token_principal(session, token))[0]


async def token_principal(session: AsyncSession, token: str) -> tuple[Principal, int, datetime | None]:
    """Who the token acts as, the token's id and when it was last used (as recorded)."""
    row = (
        await session.execute(
            select(User, ApiToken.id, ApiToken.last_used_at)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None))
        )
    ).one_or_none()
    if row is None or row[0].disabled_at is not None:
        raise Unauthorized("invalid or revoked API token")
    user, token_id, last_used = row
    return _principal(user), token_id, last_used


async def token_used(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


async def login(session: AsyncSession, clock: Clock, name: str, password: str, days: int) -> tuple[str, str]:
    """Check a password and open a web session; returns (session secret, CSRF token)."""
    user = await session.scalar(select(User).where(User.name == name))
    stored = user.password_hash if user is not None and user.disabled_at is None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise Unauthorized("wrong name or password") from None
    if user is None or stored is None:
        raise Unauthorized("wrong name or password")
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = clock.now()
    session.add(
        WebSession(
            user_id=user.id,
            session_hash=digest(secret),
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
    )
    return secret, csrf


async def session_principal(session: AsyncSession, clock: Clock, secret: str) -> tuple[Principal, str]:
    """The principal and CSRF token of a live web session."""
    row = (
        await session.execute(
            select(User, WebSession.csrf_token)
            .join(WebSession, WebSession.user_id == User.id)
            .where(WebSession.session_hash == digest(secret), WebSession.expires_at > clock.now())
        )
    ).one_or_none()
    if row is None or row[0].disabled_at is not None:
        raise Unauthorized("session expired; sign in again")
    return _principal(row[0]), row[1]


async def logout(session: AsyncSession, clock: Clock, secret: str) -> None:
    await session.execute(
        update(WebSession).where(WebSession.session_hash == digest(secret)).values(expires_at=clock.now())
    )


async def bootstrap(session: AsyncSession, clock: Clock, token: str | None) -> Bootstrap | None:
    """Create the first admin when none exists; None when one already does."""
    admins = await session.scalar(select(func.count()).select_from(User).where(User.role == Role.admin.name))
    if admins:
        return None
    password = secrets.token_urlsafe(12)
    name = "admin"
    if await session.scalar(select(User.id).where(User.name == name)) is not None:
        name = f"admin-{secrets.token_hex(3)}"
    user = await create_user(session, clock, name=name, role=Role.admin, password=password)
    if token:
        session.add(
            ApiToken(user_id=user.id, name="bootstrap", token_hash=digest(token), created_at=clock.now())
        )
    else:
        token = await create_token(session, clock, user, "bootstrap")
    return Bootstrap(user=user.name, token=token, password=password)
