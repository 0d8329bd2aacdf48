"""The ingest endpoints: plain Starlette handlers (no per-request validation models) on the hot path.

Each protocol answers in its own shape: Alertmanager a bare JSON string, PagerDuty its
`{"status","message","errors"}` object, Tocsin's own endpoints `{"error": {...}}`.
A 2xx is sent only after the alerts are committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tocsin.alerts.formats import alertmanager, generic, pagerduty
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.alerts.signals import FormatError, Signal
from tocsin.runtime import Runtime


class Rejected(Exception):
    def __init__(
        self, status: int, messages: list[str], field: str | None = None, retry_after: float = 0
    ) -> None:
        super().__init__("; ".join(messages))
        self.status, self.messages, self.field, self.retry_after = status, messages, field, retry_after


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _retry(exc: Rejected) -> dict[str, str] | None:
    return {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None


def tocsin_error(exc: Rejected) -> Response:
    code = {
        400: "invalid",
        401: "unauthorized",
        413: "too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }
    body = {
        "error": {
            "code": code.get(exc.status, "invalid"),
            "message": "; ".join(exc.messages)[:2000],
            "field": exc.field,
        }
    }
    return json_response(exc.status, body, _retry(exc))


def alertmanager_error(exc: Rejected) -> Response:
    return json_response(exc.status, "; ".join(exc.messages)[:2000], _retry(exc))


def pagerduty_error(exc: Rejected) -> Response:
    body: dict[str, Any]
    if exc.status == 429:
        body = {
            "status": "throttle exceeded",
            "message": "Requests for this service are arriving too quickly.  Please retry later.",
        }
    elif exc.status == 400:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": exc.messages[:20]}
    else:
        body = {"status": "error", "message": "; ".join(exc.messages)[:2000]}
    return json_response(exc.status, body, _retry(exc))


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 past the configured size (announced or streamed)."""
    limit = runtime_of(request).settings.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Rejected(413, [f"body over {limit} bytes"])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, [f"body over {limit} bytes"])
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    return (await read_json_and_body(request))[0]


async def read_json_and_body(request: Request) -> tuple[Any, bytes]:
    """The parsed JSON body and its raw bytes (for a signature over them)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", ""):
        raise Rejected(415, [f"content type must be application/json, not {content_type}"], "content-type")
    body = await read_body(request)
    if not body:
        raise Rejected(400, ["the body is empty; expected JSON"])
    try:
        return orjson.loads(body), body
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, [f"the body is not valid JSON: {exc}"[:300]]) from None


def bearer_or_query_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.path_params.get("key") or request.query_params.get("key") or ""


async def admit(rt: Runtime, key: str, cost: int) -> IntegrationInfo:
    integration = await rt.keys.lookup(key)
    if integration is None:
        raise Rejected(
            401, ["unknown or missing integration key (Authorization: Bearer <key> or ?key=)"], "key"
        )
    wait = rt.keys.admit(integration.id, cost, rt.policy.alerting.rate_limit_per_minute)
    if wait:
        raise Rejected(
            429,
            [f"over {rt.policy.alerting.rate_limit_per_minute} alerts a minute; retry later"],
            retry_after=wait,
        )
    return integration


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(answer: Callable[[Rejected], Response], handle: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handle(request)
        except Rejected as exc:
            return answer(exc)
        except FormatError as exc:
            return answer(Rejected(400, exc.errors))

    return endpoint


async def _submit(rt: Runtime, integration: IntegrationInfo, signals: list[Signal]) -> list[Any]:
    return await rt.ingestor.submit(integration, signals)


async def alertmanager_webhook(request: Request) -> Response:
    rt = runtime_of(request)
    key = bearer_or_query_key(request)
    body = await read_json(request)
    signals = alertmanager.parse_webhook(body, rt.clock.now())
    integration = await admit(rt, key, len(signals))
    outcomes = await _submit(rt, integration, signals)
    return json_response(200, {"status": "success", "alerts": len(outcomes)})


async def prometheus_alerts(request: Request) -> Response:
    rt = runtime_of(request)
    key = bearer_or_query_key(request)
    integration = await rt.keys.lookup(key)
    if integration is None:
        raise Rejected(401, ["unknown or missing integration key"])
    signals = alertmanager.parse_v2_alerts(await read_json(request), rt.clock.now())
    await admit(rt, key, len(signals))
    if signals:
        await _submit(rt, integration, signals)
    return Response(status_code=200)


async def pagerduty_enqueue(request: Request) -> Response:
    rt = runtime_of(request)
    body = await read_json(request)
    if isinstance(body, dict) and not body.get("routing_key") and request.headers.get("x-routing-key"):
        body["routing_key"] = request.headers["x-routing-key"]  # older pdpyras sends the key as a header
    routing_key, signal = pagerduty.parse_event(body, rt.clock.now())
    integration = await rt.keys.lookup(routing_key)
    if integration is None:
        raise Rejected(400, ["Invalid routing key"])
    await admit(rt, routing_key, 1)
    await _submit(rt, integration, [signal])
    return json_response(
        202, {"status": "success", "message": "Event processed", "dedup_key": signal.dedup_key}
    )


async def generic_webhook(request: Request) -> Response:
    rt = runtime_of(request)
    key = bearer_or_query_key(request)
    signal = generic.parse(await read_json(request), rt.clock.now())
    integration = await admit(rt, key, 1)
    outcome = (await _submit(rt, integration, [signal]))[0]
    body = {"status": outcome.result, "dedup_key": signal.dedup_key, "alert_id": outcome.alert_id}
    if outcome.incident_id is not None:
        body["incident"] = f"INC-{outcome.incident_id}"
    return json_response(202, body)


routes = [
    Route(
        "/api/v1/integrations/alertmanager", _guarded(tocsin_error, alertmanager_webhook), methods=["POST"]
    ),
    Route("/api/v1/integrations/generic", _guarded(tocsin_error, generic_webhook), methods=["POST"]),
    Route("/api/v2/alerts", _guarded(alertmanager_error, prometheus_alerts), methods=["POST"]),
    Route("/i/{key}/api/v2/alerts", _guarded(alertmanager_error, prometheus_alerts), methods=["POST"]),
    Route("/v2/enqueue", _guarded(pagerduty_error, pagerduty_enqueue), methods=["POST"]),
]
