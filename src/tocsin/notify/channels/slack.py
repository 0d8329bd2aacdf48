"""Slack through its Web API (slack_sdk), with a configurable base URL.

A post goes to a channel name (`#incidents`), a channel id or a user id (a direct message). On a
thread, the first message posts and later ones update that post in place (`chat.update`), so an
incident's announcement in the alerts channel is one message that keeps up. `op: create_channel`
creates the incident channel and invites its responders; a name already taken is looked up and
used, so a retried creation is not an error.

Errors: a refused token or a missing channel will not mend by waiting (not retried); rate limits,
5xx answers, timeouts and dropped connections are retried.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from tocsin.notify.channels.base import DeliveryError
from tocsin.notify.models import OutboxMessage

DEFAULT_API_URL = "https://slack.com/api/"
# Slack's answers that mean "later may work"; every other error is a request Slack will refuse again.
_TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_INVITED_ALREADY = frozenset({"already_in_channel", "cant_invite_self"})


def _failure(error: Exception) -> DeliveryError:
    if isinstance(error, SlackApiError):
        status = error.response.status_code
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        detail = f"Slack answered {code}" if code else f"Slack answered HTTP {status}"
        if status == 429 or status >= 500 or code in _TRANSIENT:
            after = error.response.headers.get("Retry-After", error.response.headers.get("retry-after"))
            wait = float(after) if isinstance(after, str) and after.isdigit() else None
            return DeliveryError(detail, retryable=True, retry_after=wait)
        if code in ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"):
            detail += " (the Slack token was refused: check TOCSIN_SLACK_TOKEN)"
        return DeliveryError(detail, retryable=False)
    if isinstance(error, TimeoutError):
        return DeliveryError("Slack did not answer in time", retryable=True)
    return DeliveryError(f"Slack could not be reached: {error or type(error).__name__}", retryable=True)


class SlackChannel:
    name = "slack"

    def __init__(self, token: str, *, base_url: str = DEFAULT_API_URL, timeout: int = 10) -> None:
        base = base_url if base_url.endswith("/") else base_url + "/"
        # No retry handlers of its own: the outbox retries, with backoff, and records each failure.
        self.client = AsyncWebClient(token=token, base_url=base, timeout=timeout, retry_handlers=[])

    async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
        try:
            if message.payload.get("op") == "create_channel":
                return await self._create_channel(message.payload)
            return await self._post(message, previous)
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError, OSError) as error:
            raise _failure(error) from error

    async def _post(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
        payload = message.payload
        content: dict[str, Any] = {"text": payload["text"]}
        if payload.get("blocks"):
            content["blocks"] = payload["blocks"]
        if previous and previous.get("ts") and previous.get("channel"):
            response = await self.client.chat_update(
                channel=previous["channel"], ts=previous["ts"], **content
            )
            return {"channel": response["channel"], "ts": response["ts"], "updated": True}
        response = await self.client.chat_postMessage(channel=message.target, **content)
        return {"channel": response["channel"], "ts": response["ts"]}

    async def _create_channel(self, payload: dict[str, Any]) -> dict[str, Any]:
        name = str(payload.get("name", "")).lstrip("#")
        if not name:
            raise DeliveryError("create_channel needs a name", retryable=False)
        try:
            response = await self.client.conversations_create(name=name)
            channel_id = response["channel"]["id"]
        except SlackApiError as error:
            if error.response.get("error") != "name_taken":
                raise
            channel_id = await self._find(name)
        invited, refused = [], {}
        for user in payload.get("invite") or []:
            try:
                await self.client.conversations_invite(channel=channel_id, users=user)
                invited.append(user)
            except SlackApiError as error:
                code = error.response.get("error")
                if code in _INVITED_ALREADY:
                    invited.append(user)
                elif error.response.status_code == 429 or error.response.status_code >= 500:
                    raise
                else:
                    refused[user] = str(code)  # e.g. user_not_found: the channel is still made
        return {"channel_id": channel_id, "name": name, "invited": invited, "not_invited": refused}

    async def _find(self, name: str) -> str:
        cursor = None
        while True:
            page = await self.client.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=200, cursor=cursor
            )
            for channel in page["channels"]:
                if channel["name"] == name:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                raise DeliveryError(
                    f"Slack says #{name} exists but it is not visible to Tocsin (archived or private?)",
                    retryable=False,
                )
