"""The console channel: writes the message to the log (logger `tocsin.notify`); always delivers."""

from __future__ import annotations

import logging
from typing import Any

from tocsin.notify.models import OutboxMessage

log = logging.getLogger("tocsin.notify")


class ConsoleChannel:
    name = "console"

    async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
        log.warning(  # warning: seen under the default logging set-up, which is the point
            "%s to %s%s: %s",
            message.kind,
            message.target,
            f" ({message.person})" if message.person else "",
            message.payload.get("text", ""),
        )
        return {"logged": True}
