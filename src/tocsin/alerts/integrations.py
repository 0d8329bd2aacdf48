"""Integrations: who may send alerts, with which key, to which service, under which severity rules."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.models import Integration
from tocsin.core.clock import Clock
from tocsin.core.errors import Conflict, InvalidInput, NotFound
from tocsin.core.ids import digest
from tocsin.policy.alerting import SeverityRule
from tocsin.policy.models import Policy


@dataclass(frozen=True)
class IntegrationInfo:
    """What the ingest path needs to know of an integration; cached by key digest."""

    id: int
    name: str
    kind: str
    service: str | None
    severity_rules: tuple[SeverityRule, ...]


def info(row: Integration) -> IntegrationInfo:
    rules = tuple(SeverityRule.model_validate(r) for r in row.severity_rules)
    return IntegrationInfo(row.id, row.name, row.kind, row.service, rules)


def new_key() -> str:
    """32 lowercase hex digits: the shape of a PagerDuty integration key, so PagerDuty clients accept it."""
    return secrets.token_hex(16)


def _check_service(policy: Policy, service: str | None) -> None:
    if service is not None and service not in {s.name for s in policy.services}:
        known = ", ".join(s.name for s in policy.services)
        raise InvalidInput(f"unknown service {service!r}; known: {known}", field="service")


async def create(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    *,
    name: str,
    kind: str,
    service: str | None,
    severity_rules: list[SeverityRule],
    actor: str,
    key: str | None = None,
    from_policy: bool = False,
) -> tuple[Integration, str]:
    """Create an integration; returns it with its secret key (shown once, stored hashed)."""
    _check_service(policy, service)
    if await session.scalar(select(Integration.id).where(Integration.name == name)) is not None:
        raise Conflict(f"integration {name!r} exists", field="name")
    key = key or new_key()
    row = Integration(
        name=name,
        kind=kind,
        service=service,
        key_hash=digest(key),
        severity_rules=[r.model_dump(mode="json") for r in severity_rules],
        from_policy=from_policy,
        created_by=actor,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return row, key


async def by_key(session: AsyncSession, key: str) -> IntegrationInfo | None:
    row = await session.scalar(
        select(Integration).where(Integration.key_hash == digest(key), Integration.disabled_at.is_(None))
    )
    return info(row) if row is not None else None


async def by_id(session: AsyncSession, integration_id: int) -> IntegrationInfo:
    row = await session.get(Integration, integration_id)
    if row is None:
        raise NotFound(f"no integration {integration_id}", field="integration")
    return info(row)


async def listing(session: AsyncSession) -> list[Integration]:
    return list(await session.scalars(select(Integration).order_by(Integration.name)))


async def builtin(session: AsyncSession, clock: Clock, policy: Policy, kind: str) -> IntegrationInfo:
    """The internal integration that Tocsin's own detectors (monitors, heartbeats, reports) report through."""
    name = f"tocsin-{kind}"
    row = await _named(session, name)
    if row is None:
        row, _ = await create(
            session, clock, policy, name=name, kind=kind, service=None, severity_rules=[], actor="tocsin"
        )
    return info(row)


async def _named(session: AsyncSession, name: str) -> Integration | None:
    return await session.scalar(select(Integration).where(Integration.name == name))


async def get(session: AsyncSession, name: str) -> Integration:
    row = await _named(session, name)
    if row is None:
        raise NotFound(f"no integration {name!r}", field="name")
    return row


def _not_from_policy(row: Integration, change: str) -> None:
    if row.from_policy:
        raise Conflict(
            f"integration {row.name!r} is declared in the policy (alerting.integrations): {change} there"
            " and restart Tocsin",
            field="name",
        )


async def disable(session: AsyncSession, clock: Clock, name: str) -> Integration:
    """Refuse the integration's key from now on (its alerts stay). Policy-declared ones follow the policy."""
    row = await get(session, name)
    _not_from_policy(row, "remove it")
    if row.disabled_at is None:
        row.disabled_at = clock.now()
    return row


async def enable(session: AsyncSession, name: str) -> Integration:
    row = await get(session, name)
    _not_from_policy(row, "declare it")
    row.disabled_at = None
    return row


async def rotate(session: AsyncSession, name: str) -> tuple[Integration, str]:
    """A new secret key for the integration (shown once); the old one is refused from now on."""
    row = await get(session, name)
    _not_from_policy(row, "change its key variable")
    key = new_key()
    row.key_hash = digest(key)
    return row, key


async def sync_policy(session: AsyncSession, clock: Clock, policy: Policy) -> list[str]:
    """Make the integrations the policy declares exist, enabled, with the keys their environment
    variables hold (an integration of that name made by the API is taken over); disable the ones an
    earlier policy declared and this one does not. Returns what could not be done, and what was disabled."""
    problems: list[str] = []
    declared = {spec.name for spec in policy.alerting.integrations}
    for spec in policy.alerting.integrations:
        key = os.environ.get(spec.key_env)
        if not key:
            problems.append(f"integration {spec.name}: environment variable {spec.key_env} is not set")
            continue
        holder = await session.scalar(select(Integration.name).where(Integration.key_hash == digest(key)))
        if holder is not None and holder != spec.name:
            problems.append(f"integration {spec.name}: the key in {spec.key_env} is integration {holder}'s")
            continue
        row = await _named(session, spec.name)
        if row is None:
            await create(
                session,
                clock,
                policy,
                name=spec.name,
                kind=spec.kind,
                service=spec.service,
                severity_rules=list(spec.severity_rules),
                actor="policy",
                key=key,
                from_policy=True,
            )
            continue
        row.kind, row.service, row.key_hash = spec.kind, spec.service, digest(key)
        row.severity_rules = [r.model_dump(mode="json") for r in spec.severity_rules]
        row.from_policy, row.disabled_at = True, None
    gone = select(Integration).where(
        Integration.from_policy.is_(True),
        Integration.disabled_at.is_(None),
        Integration.name.not_in(declared),
    )
    for row in await session.scalars(gone):
        row.disabled_at = clock.now()
        problems.append(f"integration {row.name}: no longer in the policy; disabled")
    return problems
