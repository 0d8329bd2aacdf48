"""API shapes of the outbox: an incident's deliveries."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: str
    target: str
    kind: str
    person: str | None
    thread: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveriesOut(BaseModel):
    counts: dict[str, int]
    items: list[DeliveryOut]
