"""Where a new integration key goes: the configuration to paste into the sender, for each kind.

Shown once, with the key, by `tocsin integration create` / `rotate-key` and by the console's
Integrations page, so that connecting Prometheus or Alertmanager is one paste, not a trip to the docs.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def snippet(kind: str, base_url: str, key: str) -> str:
    """The sender's configuration for an integration of `kind` with `key`, Tocsin being at `base_url`."""
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if kind == "prometheus":
        prefix = f"\n      path_prefix: {parts.path}" if parts.path else ""
        return f"""# prometheus.yml
alerting:
  alertmanagers:
    - scheme: {parts.scheme or "http"}
      api_version: v2{prefix}
      static_configs:
        - targets: ["{parts.netloc}"]
      authorization:
        credentials: {key}"""
    if kind == "alertmanager":
        return f"""# alertmanager.yml
receivers:
  - name: tocsin
    webhook_configs:
      - url: {base}/api/v1/integrations/alertmanager
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            credentials: {key}"""
    if kind == "pagerduty":
        return f"""# PagerDuty Events API v2: point the client at {base}/v2/enqueue, routing_key {key}
curl -s -X POST {base}/v2/enqueue -H 'Content-Type: application/json' -d '{{
  "routing_key": "{key}", "event_action": "trigger",
  "payload": {{"summary": "Checkout failing", "source": "shop", "severity": "critical"}}}}'"""
    if kind == "generic":
        return f"""curl -s -X POST {base}/api/v1/integrations/generic -H 'Authorization: Bearer {key}' \\
  -H 'Content-Type: application/json' \\
  -d '{{"summary": "Checkout failing", "severity": "critical", "dedup_key": "checkout"}}'"""
    if kind == "heartbeat":
        return f"""# crontab: ping when the job succeeds (NAME: a heartbeat of the policy)
0 2 * * * /usr/local/bin/backup && curl -fsS -X POST '{base}/api/v1/heartbeats/NAME?key={key}'"""
    if kind == "sentry":
        return f"""# Sentry internal integration, webhook URL (issue-alert and error webhooks):
{base}/api/v1/integrations/sentry?key={key}"""
    return ""
