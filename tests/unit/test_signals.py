"""Label fingerprints are dedup keys stored in every database: they must never change."""

from __future__ import annotations

from tocsin.alerts.signals import label_fingerprint


def test_fingerprints_are_stable_and_ignore_label_order() -> None:
    labels = {"alertname": "HighErrorRate", "instance": "web-1", "job": "api"}
    assert label_fingerprint(labels) == "842e7f69f996a9d4"
    assert label_fingerprint(dict(reversed(labels.items()))) == "842e7f69f996a9d4"
    assert label_fingerprint({}) == "e3b0c44298fc1c14"
    assert label_fingerprint({"zone": "é"}) == "7a531f1a4060f74d"
    # A name and value boundary cannot be moved to give the same key.
    assert label_fingerprint({"ab": "c"}) != label_fingerprint({"a": "bc"})
