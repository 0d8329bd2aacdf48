"""Ready answers at the HTTP protocol: a GET of a page already rendered costs no ASGI request.

During an outage the public status page takes thousands of GETs a second, each answered by bytes that
were rendered once. Through ASGI every one still costs a request scope, a task, a Request and a
Response object and four send/receive messages, several times the cost of the answer itself. `tocsin
serve` runs uvicorn with `ReadyProtocol`: for a GET or HEAD whose exact URL has a ready answer (the
`ready` callback, the status page's render cache), it writes the stored bytes straight to the
connection; everything else, and a ready path whose answer must wait (the first render, a page this
process just changed), goes to the app as usual. Keep-alive, HTTP/1.0, pipelining and the server's
`date`/`server` headers behave as uvicorn's own answers do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True, slots=True)
class Ready:
    """A response as it goes on the wire: status line and headers (less uvicorn's own), and body."""

    status: int
    head: bytes
    body: bytes

    @classmethod
    def of(cls, response: Response) -> Ready:
        reason = HTTPStatus(response.status_code).phrase.encode()
        lines = [b"HTTP/1.1 %d %s\r\n" % (response.status_code, reason)]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in response.raw_headers)
        return cls(response.status_code, b"".join(lines), bytes(response.body))


Answers = Callable[[bytes, bytes], Ready | None]  # (method, raw URL) -> the ready answer, or None


class ReadyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering ready GETs and HEADs itself (see the module's text)."""

    answers: Answers = staticmethod(lambda method, url: None)
    _answered = False  # the request being parsed was answered here: its body and end are not the app's

    @classmethod
    def serving(cls, answers: Answers) -> type[ReadyProtocol]:
        """This protocol bound to an answer source (uvicorn builds one protocol object per connection)."""
        return type("ReadyProtocol", (cls,), {"answers": staticmethod(answers)})

    def on_message_begin(self) -> None:
        self._answered = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        idle = not self.pipeline and (self.cycle is None or self.cycle.response_complete)
        if idle and method in (b"GET", b"HEAD") and not self.parser.should_upgrade():
            ready = self.answers(method, self.url)
            if ready is not None:
                self._answered = True
                self._write(ready, head_only=method == b"HEAD")
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._answered:
            super().on_message_complete()

    def _write(self, ready: Ready, head_only: bool) -> None:
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
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
