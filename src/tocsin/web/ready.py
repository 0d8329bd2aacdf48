"""Ready answers: a GET of a page already rendered, as bytes for the wire.

During an outage the public status page takes thousands of GETs a second, each answered by bytes that
were rendered once. `tocsin serve`'s protocol (`tocsin.web.protocol`) asks `Answers` (the status page's
render cache) for the exact URL of each GET or HEAD, and writes a ready answer straight to the
connection; everything else, and a ready path whose answer must wait (the first render, a page this
process just changed), goes to the app as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from starlette.responses import Response


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
