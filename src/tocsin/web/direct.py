"""Direct routes: the ingest endpoints as plain functions of a `Call`, with no web framework inside.

An alert storm is thousands of small POSTs a second, and every layer between the socket and the
handler (ASGI's scope and messages, Starlette's Request and Response, middleware, routing) costs more
than the alert itself. A direct route is written once, against `Call` (the headers, query, path
parameters and whole body) and `Answer` (status, headers, body), and served two ways:

- by `tocsin serve`'s HTTP protocol (`tocsin.web.protocol`), which matches the URL, reads the body and
  writes the answer itself, with no ASGI request at all;
- as an ordinary Starlette route (`starlette_route`), for the app under any other ASGI server and for
  the tests' in-process client.

Both give the same answer for the same request; the tests compare them.

The storm's handlers are not coroutines: one returns its `Answer` at once, or a `Later` that names the
future it waits for (the group commit of its alerts) and what to answer then. No task is made for
such a request, and nothing is resumed but that one callback: a task a request cost as much as the rest
of the protocol's own work (one alert a request, 32 clients). A coroutine function is a handler too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

log = logging.getLogger("tocsin.web")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()  # content-type and the like; content-length is added

    @classmethod
    def json(cls, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
        extra = tuple(headers.items()) if headers else ()
        return cls(status, orjson.dumps(body), (("content-type", "application/json"), *extra))


UNAVAILABLE = Answer.json(
    503,
    {"error": {"code": "unavailable", "message": "the request could not be completed; retry", "field": None}},
    {"Retry-After": "5"},
)


@dataclass(slots=True)
class Call:
    """One request to a direct route. `headers` has lower-case names; `params` the path's parameters."""

    state: Any  # what the route serves from (Tocsin's Runtime)
    method: str
    headers: Mapping[str, str]
    query: str
    params: dict[str, str]
    body: bytes
    _query: dict[str, list[str]] | None = field(default=None, repr=False)

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    def query_param(self, name: str) -> str:
        if not self.query:
            return ""
        if self._query is None:
            self._query = parse_qs(self.query, keep_blank_values=True)
        values = self._query.get(name)
        return values[0] if values else ""


@dataclass(frozen=True, slots=True)
class Later:
    """An answer that waits for `future` (a commit, a key looked up): `then(its result)` once it is done,
    itself an answer or another wait. No task runs meanwhile: the future's callback goes on."""

    future: asyncio.Future[Any]
    then: Callable[[Any], Reply]


Reply = Answer | Later
# A handler answers at once, or says what it waits for (`Later`); or it is a coroutine function,
# run as a task of its own (simpler to write, for routes that are not an alert storm's).
Handle = Callable[[Call], Reply | Awaitable[Answer]]
_tasks: set[asyncio.Task[Any]] = set()  # tasks of `task`, held until done


def task(work: Awaitable[T]) -> asyncio.Task[T]:
    """`work` run as a task, held until it is done (the event loop holds only weak references)."""
    running = asyncio.ensure_future(work)
    _tasks.add(running)
    running.add_done_callback(_tasks.discard)
    return running


@dataclass(frozen=True)
class Direct:
    """A direct route: its path template (`{name}` for a parameter), methods, handler, body limit, and
    the answer to an error the handler raises (`rejects`: None for an unexpected one, a 503)."""

    path: str
    handle: Handle
    methods: tuple[str, ...] = ("POST",)
    too_large: Callable[[int], Answer] = field(
        default=lambda limit: Answer.json(
            413, {"error": {"code": "too_large", "message": f"body over {limit} bytes", "field": None}}
        )
    )
    rejects: Callable[[Exception], Answer | None] = field(default=lambda exc: None)

    def start(self, call: Call, done: Callable[[Answer], None]) -> None:
        """Call `done` with the answer to `call`: now, if the handler has it, or from the callback of
        what it waits for."""
        self._go(functools.partial(self.handle, call), call, done)

    async def answer(self, call: Call) -> Answer:
        """The answer, awaited (for the Starlette route and tests)."""
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def done(answer: Answer) -> None:
            if not answered.done():  # not given up on (cancelled)
                answered.set_result(answer)

        self.start(call, done)
        return await answered

    def _go(
        self, step: Callable[[], Reply | Awaitable[Answer]], call: Call, done: Callable[[Answer], None]
    ) -> None:
        try:
            reply = step()
        except (Exception, asyncio.CancelledError) as exc:
            done(self._failed(exc, call))
            return
        if isinstance(reply, Answer):
            done(reply)
        elif isinstance(reply, Later):
            later = reply
            later.future.add_done_callback(
                lambda finished: self._go(lambda: later.then(finished.result()), call, done)
            )
        else:
            task(reply).add_done_callback(lambda finished: self._go(finished.result, call, done))

    def _failed(self, exc: BaseException, call: Call) -> Answer:
        """A handler's error in the route's own shape; anything unexpected is a 503 (nothing was
        committed: a retry is welcome)."""
        answer = self.rejects(exc) if isinstance(exc, Exception) else None
        if answer is None:
            log.error("%s %s failed", call.method, self.path, exc_info=exc)
            return UNAVAILABLE
        return answer


class Table:
    """The direct routes of one app: what they serve from (`state`), their body limit, and the lookup by
    URL path (exact paths in a dict, templated ones as regular expressions)."""

    def __init__(self, routes: list[Direct], state: Any, limit: int) -> None:
        self.routes, self.state, self.limit = routes, state, limit
        self.exact = {r.path: r for r in routes if "{" not in r.path}
        self.patterned = [
            (re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", r.path)), r) for r in routes if "{" in r.path
        ]

    def match(self, path: str, method: str) -> tuple[Direct, dict[str, str]] | None:
        route, params = self.exact.get(path), {}
        if route is None:
            for pattern, candidate in self.patterned:
                found = pattern.fullmatch(path)
                if found is not None:
                    route, params = candidate, found.groupdict()
                    break
        if route is None or method not in route.methods:
            return None
        return route, params

    def starlette_routes(self) -> list[Route]:
        """The same routes for Starlette: the same handlers, the body read with the same limit."""
        return [self._starlette(route) for route in self.routes]

    def _starlette(self, route: Direct) -> Route:
        async def endpoint(request: Request) -> Response:
            body = await _read_body(request, self.limit)
            if body is None:
                answer = route.too_large(self.limit)
            else:
                params = dict(request.path_params)
                call = Call(self.state, request.method, request.headers, request.url.query, params, body)
                answer = await route.answer(call)
            return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))

        return Route(route.path, endpoint, methods=list(route.methods))


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None past `limit` bytes (announced or streamed)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
