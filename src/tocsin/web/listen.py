"""The listening socket of each `tocsin serve --workers` process: its own, on the shared port.

uvicorn's supervisor binds one socket and hands it to every worker. Then all workers accept from one
queue, and the one that wakes first takes every connection waiting: asyncio accepts up to the backlog
in a go. A burst of new connections (a load generator's 32, a fleet of Prometheus servers after a
restart) lands on one process while the others idle. Here the supervisor hands out `ReusePort`
instead, which each worker unpickles as a socket of its own bound with SO_REUSEPORT: the kernel then
spreads new connections evenly across the workers' queues.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, not yet listening."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class ReusePort:
    """Stands for the listening socket in uvicorn's supervisor; a worker unpickles it as its own."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def reserved(host: str, port: int) -> contextlib.closing[socket.socket]:
    """The port held for the workers while the supervisor runs (bound, never listening, so it takes no
    connections): a port already taken fails here (OSError), once, and stays ours while a worker is
    restarted."""
    return contextlib.closing(reuse_port_socket(host, port))
