from tocsin.incidents.lifecycle import ACTIVE, TRANSITIONS, Status, allowed


def test_every_active_status_can_resolve_and_none_skip_to_closed() -> None:
    for status in ACTIVE:
        assert Status.resolved in allowed(status)
        assert Status.closed not in allowed(status)


def test_nothing_returns_to_triggered_and_closed_is_terminal() -> None:
    assert all(Status.triggered not in targets for targets in TRANSITIONS.values())
    assert allowed(Status.closed) == ()
    assert allowed(Status.resolved) == (Status.closed,)


def test_acknowledged_only_from_triggered() -> None:
    assert [s for s, targets in TRANSITIONS.items() if Status.acknowledged in targets] == [Status.triggered]
