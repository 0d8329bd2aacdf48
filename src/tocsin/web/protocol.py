"""`tocsin serve`'s HTTP protocol: ready GETs and direct routes answered with no ASGI request.

Through ASGI every request costs a scope, a task, a Request and a Response object and four
send/receive messages, several times the cost of a status page's stored bytes or of one alert's parse.
`DirectProtocol` is uvicorn's httptools protocol, taking two kinds of request itself:

- a GET or HEAD whose exact URL has a ready answer (the `answers` callback, the status page's render
  cache: `tocsin.web.ready`) is written from the stored bytes at once;
- a request to a direct route (`tocsin.web.direct`: the alert ingest endpoints) is matched here, its
  body read here (refused past the limit, `Expect: 100-continue` answered), and its handler's answer
  written here, with no task (`Direct.start`: the answer's callback writes it).

Everything else goes to the app as usual, and so does a direct request that arrives pipelined behind
another request on its connection (uvicorn's own queue keeps the answers in order). Keep-alive,
HTTP/1.0, `Connection: close`, pipelining, HEAD and the server's `date`/`server` headers behave as
uvicorn's own answers do; every answer is counted in Tocsin's metrics.
"""

from __future__ import annotations

import functools
import time
import urllib.parse
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from tocsin.health.metrics import Metrics
from tocsin.web.direct import Answer, Call, Direct, Table
from tocsin.web.ready import Answers, Ready

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _app_state(app: Any) -> Any:
    """The state of the app under uvicorn's wrappers (each keeps the app it wraps as `.app`)."""
    for _ in range(10):
        state = getattr(app, "state", None)
        if state is not None:
            return state
        app = getattr(app, "app", None)
    return None


class _Event:
    def set(self) -> None:  # uvicorn sets the cycle's event when the connection is lost: nothing waits here
        pass


class _Taken:
    """A direct request in uvicorn's place of the current cycle, so that requests pipelined behind it
    wait in uvicorn's own queue until it is answered (`on_response_complete` starts the next)."""

    __slots__ = (
        "body",
        "disconnected",
        "keep_alive",
        "params",
        "query",
        "response_complete",
        "route",
        "size",
        "started",
    )
    message_event = _Event()

    def __init__(self, route: Direct, params: dict[str, str], query: str, keep_alive: bool) -> None:
        self.route, self.params, self.query, self.keep_alive = route, params, query, keep_alive
        self.body: list[bytes] = []
        self.size = 0
        self.response_complete = False  # uvicorn's name: set once the answer is written
        self.disconnected = False
        self.started = time.perf_counter()


class DirectProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering ready GETs and direct routes itself (see the module's text)."""

    answers: Answers = staticmethod(lambda method, url: None)
    table: Table | None = None
    metrics: Metrics | None = None
    bound = False  # the sources above were given (`serving`), not to be found on the app's state
    _answered = False  # the request being parsed was answered whole here: its body and end are ignored
    _taken: _Taken | None = None  # the request being parsed goes to a direct route

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any], _loop: Any = None
    ):
        super().__init__(config, server_state, app_state, _loop)
        if not self.bound:  # as `tocsin serve` runs it: the sources are on the app's state (`tocsin.app`)
            state = _app_state(config.loaded_app)
            self.answers = getattr(state, "ready_answers", self.answers)
            self.table = getattr(state, "direct", None)
            runtime = getattr(state, "runtime", None)
            self.metrics = runtime.metrics if runtime is not None else None

    @classmethod
    def serving(
        cls, answers: Answers, table: Table | None = None, metrics: Metrics | None = None
    ) -> type[DirectProtocol]:
        """This protocol bound to the given answer sources (uvicorn builds one protocol object per
        connection); unbound, it finds them on the state of the app it serves."""
        attributes = {"answers": staticmethod(answers), "table": table, "metrics": metrics, "bound": True}
        return type("DirectProtocol", (cls,), attributes)

    def on_message_begin(self) -> None:
        self._answered = False
        self._taken = None
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        idle = not self.pipeline and (self.cycle is None or self.cycle.response_complete)
        if idle and not self.parser.should_upgrade():
            if method in (b"GET", b"HEAD"):
                ready = self.answers(method, self.url)
                if ready is not None:
                    self._answered = True
                    self._write_ready(ready, head_only=method == b"HEAD")
                    return
            if self.table is not None and self._take(method.decode("ascii")):
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        taken = self._taken
        if taken is not None:
            if not taken.response_complete:
                taken.size += len(body)
                if taken.size > self._limit():
                    self._refuse(taken)
                else:
                    taken.body.append(body)
        elif not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        taken = self._taken
        if taken is not None:
            if not taken.response_complete:
                taken.route.start(self._call(taken), functools.partial(self._answer, taken))
        elif not self._answered:
            super().on_message_complete()

    # -- direct routes ---------------------------------------------------------------------------------

    def _limit(self) -> int:
        assert self.table is not None
        return self.table.limit

    def _take(self, method: str) -> bool:
        """Take this request if a direct route serves it: it becomes the connection's current cycle."""
        assert self.table is not None
        url = httptools.parse_url(self.url)
        raw_path = url.path.decode("ascii")
        path = urllib.parse.unquote(raw_path) if "%" in raw_path else raw_path
        found = self.table.match(path, method)
        if found is None:
            return False
        route, params = found
        self._taken = taken = _Taken(route, params, (url.query or b"").decode("latin-1"), self._keep_alive())
        self.cycle = taken  # type: ignore[assignment]  # uvicorn reads only the attributes _Taken has
        self.scope["method"] = method
        self.scope["path"] = path
        length = dict(self.headers).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self._limit()):
            self._refuse(taken)
        elif self.expect_100_continue:
            self.transport.write(_CONTINUE)
        return True

    def _call(self, taken: _Taken) -> Call:
        assert self.table is not None
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in self.headers}
        body = b"".join(taken.body)
        return Call(self.table.state, self.scope["method"], headers, taken.query, taken.params, body)

    def _refuse(self, taken: _Taken) -> None:
        """Past the body limit: the route's 413, and the connection closed (the rest of the body unread)."""
        taken.keep_alive = False
        self._finish(taken, taken.route.too_large(self._limit()))

    def _answer(self, taken: _Taken, answer: Answer) -> None:
        if not taken.response_complete:
            self._finish(taken, answer)

    def _finish(self, taken: _Taken, answer: Answer) -> None:
        taken.response_complete = True
        if self.metrics is not None:
            self.metrics.observe(
                self.scope["method"], taken.route.path, answer.status, time.perf_counter() - taken.started
            )
        if self.transport.is_closing():
            return
        head = [b"HTTP/1.1 %d %s\r\n" % (answer.status, HTTPStatus(answer.status).phrase.encode())]
        head.extend(
            b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers
        )
        head.append(b"content-length: %d\r\n" % len(answer.body))
        head.extend(b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        if not taken.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self.transport.writelines([b"".join(head), answer.body])
        if not taken.keep_alive:
            self.transport.close()
        self.on_response_complete()  # counts the request; starts a pipelined one, or the keep-alive timer

    # -- ready answers ---------------------------------------------------------------------------------

    def _keep_alive(self) -> bool:
        return self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()

    def _write_ready(self, ready: Ready, head_only: bool) -> None:
        keep_alive = self._keep_alive()
        defaults = b"".join(b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        closing = b"" if keep_alive else b"connection: close\r\n"
        self.transport.writelines([ready.head, defaults, closing, b"\r\n", b"" if head_only else ready.body])
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
