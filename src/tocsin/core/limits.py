"""Request body limits, enforced before any parsing."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    """Answers 413 for bodies over `max_bytes`, whether announced by Content-Length or streamed.

    The body is read (at most `max_bytes` of it) before the app runs and replayed to it: a limit
    checked while the app reads would surface inside FastAPI's body parsing, which turns any
    error there into a generic 400.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await self._reject(send, 400, "bad_request", "the Content-Length header is not a number")
                    return
                if int(value) > self.max_bytes:
                    await self._too_large(send)
                    return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body: nothing to answer.
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await self._reject(send, 413, "too_large", f"the body is over the limit of {self.max_bytes} bytes")

    async def _reject(self, send: Send, status: int, code: str, message: str) -> None:
        body = orjson.dumps({"error": {"code": code, "message": message, "field": None}})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
