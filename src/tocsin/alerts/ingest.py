"""The ingest endpoints: direct routes (`tocsin.web.direct`), no per-request validation models.

Each protocol answers in its own shape: Alertmanager a bare JSON string, PagerDuty its
`{"status","message","errors"}` object, Tocsin's own endpoints `{"error": {...}}`.
A 2xx is sent only after the alerts are committed: a handler returns a `Later` that waits for the
group commit (`Ingestor.enqueue`), and no task runs for the request meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tocsin.alerts.formats import alertmanager, generic, pagerduty
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.alerts.keys import Unknown
from tocsin.alerts.signals import FormatError, Outcome, Signal
from tocsin.runtime import Runtime
from tocsin.web import direct as web
from tocsin.web.direct import Answer, Call, Direct, Handle, Later, Reply


class Rejected(Exception):
    def __init__(
        self, status: int, messages: list[str], field: str | None = None, retry_after: float = 0
    ) -> None:
        super().__init__("; ".join(messages))
        self.status, self.messages, self.field, self.retry_after = status, messages, field, retry_after


def _retry(exc: Rejected) -> dict[str, str] | None:
    return {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None


def tocsin_error(exc: Rejected) -> Answer:
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
    return Answer.json(exc.status, body, _retry(exc))


def alertmanager_error(exc: Rejected) -> Answer:
    return Answer.json(exc.status, "; ".join(exc.messages)[:2000], _retry(exc))


def pagerduty_error(exc: Rejected) -> Answer:
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
    return Answer.json(exc.status, body, _retry(exc))


def read_json(call: Call) -> Any:
    """The parsed JSON body (415 for another content type, 400 for an empty or broken body)."""
    content_type = call.header("content-type").split(";")[0].strip().lower()
    if content_type not in ("application/json", ""):
        raise Rejected(415, [f"content type must be application/json, not {content_type}"], "content-type")
    if not call.body:
        raise Rejected(400, ["the body is empty; expected JSON"])
    try:
        return orjson.loads(call.body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, [f"the body is not valid JSON: {exc}"[:300]]) from None


def bearer_or_query_key(call: Call) -> str:
    auth = call.header("authorization")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return call.params.get("key") or call.query_param("key")


def known(rt: Runtime, key: str, then: Callable[[IntegrationInfo | None], Reply]) -> Reply:
    """`then(the integration of key, or None)`: at once from the key cache, else once it is looked up."""
    found = rt.keys.cached(key)
    if isinstance(found, Unknown):
        return Later(web.task(rt.keys.lookup(key)), then)
    return then(found)


async def admit(rt: Runtime, key: str, cost: int) -> IntegrationInfo:
    """The integration of `key` (401 if none), once it is within its rate limit (`throttle`)."""
    return admitted(rt, await rt.keys.lookup(key), cost)


def admitted(rt: Runtime, integration: IntegrationInfo | None, cost: int) -> IntegrationInfo:
    """`integration` (401 if None: its key is unknown), if within its rate limit (`throttle`)."""
    if integration is None:
        raise Rejected(
            401, ["unknown or missing integration key (Authorization: Bearer <key> or ?key=)"], "key"
        )
    return throttle(rt, integration, cost)


def throttle(rt: Runtime, integration: IntegrationInfo, cost: int) -> IntegrationInfo:
    """`integration`, if `cost` alerts more keep it within its rate limit; else a 429 with Retry-After."""
    wait = rt.keys.admit(integration.id, cost, rt.policy.alerting.rate_limit_per_minute)
    if wait:
        raise Rejected(
            429,
            [f"over {rt.policy.alerting.rate_limit_per_minute} alerts a minute; retry later"],
            retry_after=wait,
        )
    return integration


def direct(
    path: str, handle: Handle, error: Callable[[Rejected], Answer], methods: tuple[str, ...] = ("POST",)
) -> Direct:
    """An ingest route: Rejected and FormatError answered in the protocol's own shape, 413 too."""

    def rejects(exc: Exception) -> Answer | None:
        if isinstance(exc, Rejected):
            return error(exc)
        if isinstance(exc, FormatError):
            return error(Rejected(400, exc.errors))
        return None

    too_large = lambda limit: error(Rejected(413, [f"body over {limit} bytes"]))  # noqa: E731
    return Direct(path, handle, methods, too_large, rejects)


def committed(
    rt: Runtime, integration: IntegrationInfo, signals: list[Signal], then: Callable[[list[Outcome]], Reply]
) -> Reply:
    """`then(what became of each signal)` once the signals are committed (the group commit's)."""
    return Later(rt.ingestor.enqueue(integration, signals), then)


def admitted_and_committed(
    rt: Runtime, key: str, signals: list[Signal], then: Callable[[list[Outcome]], Reply]
) -> Reply:
    """`then(outcomes)` once the signals are committed for the integration of `key` (`admitted`)."""
    return known(rt, key, lambda found: committed(rt, admitted(rt, found, len(signals)), signals, then))


def alertmanager_webhook(call: Call) -> Reply:
    rt: Runtime = call.state
    key = bearer_or_query_key(call)
    signals = alertmanager.parse_webhook(read_json(call), rt.clock.now())
    return admitted_and_committed(rt, key, signals, _alertmanager_ok)


def _alertmanager_ok(outcomes: list[Outcome]) -> Answer:
    return Answer.json(200, {"status": "success", "alerts": len(outcomes)})


_OK = Answer(200)


def prometheus_alerts(call: Call) -> Reply:
    rt: Runtime = call.state
    return known(rt, bearer_or_query_key(call), lambda integration: _prometheus(call, rt, integration))


def _prometheus(call: Call, rt: Runtime, integration: IntegrationInfo | None) -> Reply:
    if integration is None:
        raise Rejected(401, ["unknown or missing integration key"])
    signals = alertmanager.parse_v2_alerts(read_json(call), rt.clock.now())
    throttle(rt, integration, len(signals))
    if not signals:
        return _OK
    return committed(rt, integration, signals, lambda _: _OK)


def pagerduty_enqueue(call: Call) -> Reply:
    rt: Runtime = call.state
    body = read_json(call)
    if isinstance(body, dict) and not body.get("routing_key") and call.header("x-routing-key"):
        body["routing_key"] = call.header("x-routing-key")  # older pdpyras sends the key as a header
    routing_key, signal = pagerduty.parse_event(body, rt.clock.now())

    def send(integration: IntegrationInfo | None) -> Reply:
        if integration is None:
            raise Rejected(400, ["Invalid routing key"])
        throttle(rt, integration, 1)
        accepted = {"status": "success", "message": "Event processed", "dedup_key": signal.dedup_key}
        return committed(rt, integration, [signal], lambda _: Answer.json(202, accepted))

    return known(rt, routing_key, send)


def generic_webhook(call: Call) -> Reply:
    rt: Runtime = call.state
    key = bearer_or_query_key(call)
    signal = generic.parse(read_json(call), rt.clock.now())

    def answer(outcomes: list[Outcome]) -> Answer:
        outcome = outcomes[0]
        body = {"status": outcome.result, "dedup_key": signal.dedup_key, "alert_id": outcome.alert_id}
        if outcome.incident_id is not None:
            body["incident"] = f"INC-{outcome.incident_id}"
        return Answer.json(202, body)

    return admitted_and_committed(rt, key, [signal], answer)


routes = [
    direct("/api/v1/integrations/alertmanager", alertmanager_webhook, tocsin_error),
    direct("/api/v1/integrations/generic", generic_webhook, tocsin_error),
    direct("/api/v2/alerts", prometheus_alerts, alertmanager_error),
    direct("/i/{key}/api/v2/alerts", prometheus_alerts, alertmanager_error),
    direct("/v2/enqueue", pagerduty_enqueue, pagerduty_error),
]
