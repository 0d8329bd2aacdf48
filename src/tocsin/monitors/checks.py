"""The checks themselves: an HTTP(S) request, a TCP connect, a TLS handshake. A check never raises.

Whatever goes wrong (refused, timed out, bad certificate) becomes a CheckResult with an error text, so a
monitor's conditions decide what is healthy and the runner never loses a tick to an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tocsin import __version__
from tocsin.core.durations import format_duration
from tocsin.monitors.conditions import MISSING
from tocsin.policy.monitors import MonitorSpec

MAX_BODY = 1_048_576  # bytes of a response body kept for [BODY] conditions; the rest is not read
USER_AGENT = f"Tocsin/{__version__} (health check)"


@dataclass
class CheckResult:
    """What one run of a check observed; None where nothing was observed."""

    at: datetime
    connected: bool = False
    status: int | None = None
    latency_ms: float | None = None
    ip: str | None = None
    body: bytes | None = None
    certificate_expires_at: datetime | None = None
    domain_expires_at: datetime | None = None
    dns_rcode: str | None = None
    error: str | None = None
    _json: Any = field(default=None, init=False, repr=False)

    def json(self) -> Any:
        """The body parsed as JSON, or MISSING when it is not JSON (parsed once)."""
        if self._json is None:
            try:
                self._json = json.loads(self.body) if self.body else MISSING
            except (ValueError, RecursionError):
                self._json = MISSING
        return self._json


class Checker:
    """Runs checks; holds one pooled HTTP client (and one that skips verification) for all monitors."""

    def __init__(self, max_connections: int = 100) -> None:
        self.max_connections = max_connections
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def _context(self, insecure: bool) -> ssl.SSLContext:
        if insecure not in self._contexts:
            context = ssl.create_default_context()
            if insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[insecure] = context
        return self._contexts[insecure]

    def _client(self, insecure: bool) -> httpx.AsyncClient:
        if insecure not in self._clients:
            limits = httpx.Limits(
                max_connections=self.max_connections, max_keepalive_connections=self.max_connections
            )
            # trust_env off: a health check measures the path to the service, not through a proxy.
            self._clients[insecure] = httpx.AsyncClient(
                verify=self._context(insecure),
                limits=limits,
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
            )
        return self._clients[insecure]

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def check(self, spec: MonitorSpec, at: datetime) -> CheckResult:
        """Run one check of `spec`, started at `at`; never raises."""
        result = CheckResult(at=at)
        try:
            async with asyncio.timeout(spec.timeout.total_seconds()):
                if spec.kind == "http":
                    await self._http(spec, result)
                else:
                    await self._connect(spec, result)
        except (TimeoutError, httpx.TimeoutException):
            result.error = f"timed out after {format_duration(spec.timeout)}"
        except Exception as error:  # a check reports, never raises
            result.error = describe(error)
        if result.error is not None:
            result.latency_ms = None  # time to fail is not a response time
        return result

    async def _http(self, spec: MonitorSpec, result: CheckResult) -> None:
        assert spec.url is not None
        client = self._client(spec.insecure)
        seconds = spec.timeout.total_seconds()
        request = client.build_request(
            spec.method,
            spec.url,
            headers=spec.headers,
            content=spec.body.encode() if spec.body else None,
            timeout=httpx.Timeout(seconds),
        )
        started = time.perf_counter()
        response = await client.send(request, stream=True, follow_redirects=spec.follow_redirects)
        try:
            result.connected = True
            result.status = response.status_code
            _peer(response.extensions.get("network_stream"), result)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= MAX_BODY:
                    break
            result.body = bytes(body[:MAX_BODY])
        finally:
            await response.aclose()
        result.latency_ms = (time.perf_counter() - started) * 1000

    async def _connect(self, spec: MonitorSpec, result: CheckResult) -> None:
        assert spec.host is not None
        context = self._context(spec.insecure) if spec.kind == "tls" else None
        started = time.perf_counter()
        _, writer = await asyncio.open_connection(
            spec.host, spec.target_port, ssl=context, server_hostname=spec.host if context else None
        )
        try:
            result.latency_ms = (time.perf_counter() - started) * 1000
            result.connected = True
            peer = writer.get_extra_info("peername")
            result.ip = str(peer[0]) if peer else None
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is not None:
                result.certificate_expires_at = _expiry(ssl_object)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()


def _peer(stream: Any, result: CheckResult) -> None:
    if stream is None:
        return
    address = stream.get_extra_info("server_addr")
    result.ip = str(address[0]) if address else None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is not None:
        result.certificate_expires_at = _expiry(ssl_object)


def _expiry(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> datetime | None:
    der = ssl_object.getpeercert(binary_form=True)
    return certificate_not_after(der) if der else None


def describe(error: BaseException) -> str:
    """A one-line account of why a check failed, for people."""
    # httpx wraps the socket's error; the cause says what really happened.
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    text = str(error) or type(error).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed: " + text.rsplit("certificate verify failed:", 1)[-1].strip(" ()")
    if "refused" in text.lower():
        return "connection refused"
    return " ".join(text.split())[:500]


# ------------------------------------------------------------------------------------ reading X.509 (DER)


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at pos."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def certificate_not_after(der: bytes) -> datetime:
    """The notAfter instant of a DER certificate (read directly, so unverified certificates work too)."""
    try:
        _, cert, _ = _tlv(der, 0)  # Certificate ::= SEQUENCE { tbsCertificate, ... }
        _, pos, _ = _tlv(
            der, cert
        )  # TBSCertificate ::= SEQUENCE { [0] version?, serial, sig, issuer, validity }
        if der[pos] == 0xA0:
            pos = _tlv(der, pos)[2]
        for _ in range(3):  # serialNumber, signature, issuer
            pos = _tlv(der, pos)[2]
        _, validity, _ = _tlv(der, pos)
        not_before_end = _tlv(der, validity)[2]
        tag, start, end = _tlv(der, not_before_end)
        text = der[start:end].decode("ascii")
    except IndexError:
        raise ValueError("truncated certificate") from None
    if tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, years 1950-2049
        at = datetime.strptime(text, "%y%m%d%H%M%SZ")
        if at.year >= 2050:
            at = at.replace(year=at.year - 100)
    elif tag == 0x18:  # GeneralizedTime: YYYYMMDDHHMMSSZ
        at = datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("certificate validity is not a time")
    return at.replace(tzinfo=UTC)
