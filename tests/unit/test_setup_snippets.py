"""What Tocsin prints for a new key: a configuration per kind, with the key in it.

The Prometheus and Alertmanager ones are also fed to Debian's Prometheus and Alertmanager by
tests/clients (test_prometheus.py, test_alertmanager.py)."""

from __future__ import annotations

import typing

import pytest
import yaml

from tocsin.alerts.setup import snippet
from tocsin.policy.alerting import IntegrationKind

KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("kind", typing.get_args(IntegrationKind))
def test_every_kind_says_where_the_key_goes(kind: str) -> None:
    text = snippet(kind, "https://tocsin.example/", KEY)
    assert KEY in text and "https://tocsin.example" in text.replace(
        '["tocsin.example"]', "https://tocsin.example"
    )
    assert "//api" not in text and "//v2" not in text  # the trailing slash is not doubled


def test_prometheus_behind_a_path_gets_a_path_prefix() -> None:
    (entry,) = yaml.safe_load(snippet("prometheus", "https://ops.example/tocsin", KEY))["alerting"][
        "alertmanagers"
    ]
    assert entry == {
        "scheme": "https",
        "api_version": "v2",
        "path_prefix": "/tocsin",
        "static_configs": [{"targets": ["ops.example"]}],
        "authorization": {"credentials": KEY},
    }


def test_alertmanager_sends_every_alert_and_the_resolved_ones() -> None:
    (hook,) = yaml.safe_load(snippet("alertmanager", "http://127.0.0.1:8080", KEY))["receivers"][0][
        "webhook_configs"
    ]
    assert hook["url"] == "http://127.0.0.1:8080/api/v1/integrations/alertmanager"
    assert hook["send_resolved"] is True and hook["max_alerts"] == 0
    assert hook["http_config"] == {"authorization": {"credentials": KEY}}
