"""The spike detector on generated series: noise is quiet, a jump raises once, the return clears it."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

import pytest

from tocsin.monitors.spikes import Observation, SpikeDetector, SpikeSettings, SpikeState, describe, number


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: exact for the small means used here."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def series(seed: int, *segments: tuple[float, int]) -> list[int]:
    """Poisson samples: `count` of them around each `mean`, in order."""
    rng = random.Random(seed)
    return [poisson(rng, mean) for mean, count in segments for _ in range(count)]


def run(
    detector: SpikeDetector, values: Iterable[float], state: SpikeState | None = None
) -> tuple[SpikeState, list[tuple[int, Observation]]]:
    """Feed every value; the final state and the (index, observation) of each raise or clear."""
    state = state or SpikeState()
    changes = []
    for i, value in enumerate(values):
        observation = detector.observe(state, value)
        state = observation.state
        if observation.change:
            changes.append((i, observation))
    return state, changes


DEFAULT = SpikeDetector(SpikeSettings())


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("mean", [0.2, 3, 12, 50, 400])
def test_steady_noise_raises_nothing(seed: int, mean: float) -> None:
    state, changes = run(DEFAULT, series(seed, (mean, 1000)))
    assert changes == []
    assert state.baseline is not None and abs(state.baseline - mean) < max(1.0, 0.25 * mean)


@pytest.mark.parametrize("seed", range(20))
def test_a_fivefold_jump_raises_once_and_the_return_clears_it(seed: int) -> None:
    values = series(seed, (50, 100), (250, 30), (50, 40))
    state, changes = run(DEFAULT, values)
    assert [c.change for _, c in changes] == ["raise", "clear"]
    (raised_at, raised), (cleared_at, _) = changes
    assert 100 < raised_at < 130 and 130 < cleared_at <= 135
    assert 45 < raised.baseline < 55 and raised.value >= 4.5 * raised.baseline
    assert not state.raised


def test_the_baseline_does_not_learn_the_spike() -> None:
    settings = SpikeSettings(raise_after=2, clear_after=3)
    detector = SpikeDetector(settings)
    state, _ = run(detector, [50] * 50)
    assert state.baseline == pytest.approx(50)
    spiking, changes = run(detector, [300] * 500, state)
    assert [c.change for _, c in changes] == ["raise"]
    assert spiking.raised and spiking.baseline == state.baseline and spiking.samples == state.samples
    # An isolated high sample is pending, not learned, and forgotten when the next one is normal.
    single = detector.observe(state, 400).state
    assert single.above == 1 and single.baseline == state.baseline
    assert detector.observe(single, 50).state.above == 0


def test_flap_damping_needs_consecutive_samples() -> None:
    detector = SpikeDetector(SpikeSettings(raise_after=3, clear_after=2))
    state, _ = run(detector, [20] * 30)
    # High every other sample: never three in a row, so never raised.
    state, changes = run(detector, [200, 20] * 20, state)
    assert changes == [] and not state.raised
    state, changes = run(detector, [200, 200, 200], state)
    assert [c.change for _, c in changes] == ["raise"]
    # Dipping to normal once, between high samples, does not clear it.
    state, changes = run(detector, [20, 200, 20, 200], state)
    assert changes == [] and state.raised
    state, changes = run(detector, [20, 20], state)
    assert [c.change for _, c in changes] == ["clear"]


def test_warmup_and_low_volume_raise_nothing() -> None:
    detector = SpikeDetector(SpikeSettings(warmup=10, min_count=10))
    # The first samples only learn, even a jump among them.
    _, changes = run(detector, [1, 1, 1, 50, 50, 1, 1])
    assert changes == []
    # 0 errors a minute, then 8: a huge factor but under min_count.
    _, changes = run(detector, [0] * 30 + [8] * 10)
    assert changes == []
    # The floor: a baseline of 0.1 makes the threshold 5 x 1 (floor), held up to min_count 10.
    state, _ = run(detector, [0.1] * 30)
    assert detector.threshold(state) == 10
    _, changes = run(detector, [12, 12], state)
    assert [c.change for _, c in changes] == ["raise"]


def test_the_alert_says_the_rate_the_baseline_and_the_factor() -> None:
    state, _ = run(DEFAULT, [48] * 20)
    _, changes = run(DEFAULT, [250, 250], state)
    observation = changes[0][1]
    assert describe("api", observation, "/min") == "api errors 250/min vs baseline 48/min (5.2\u00d7)"
    assert (
        number(0.052) == "0.052" and number(3.0) == "3" and number(3.46) == "3.5" and number(1234.4) == "1234"
    )


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        SpikeSettings(alpha=0)
    with pytest.raises(ValueError):
        SpikeSettings(factor=3, clear_factor=3)


def test_a_lasting_move_below_the_spike_level_becomes_the_new_normal() -> None:
    detector = SpikeDetector(SpikeSettings(relearn_after=60))
    state, _ = run(detector, [20] * 30)
    # 3.5x: elevated (not learned) but never high enough to raise.
    moved, changes = run(detector, [70] * 59, state)
    assert changes == [] and moved.baseline == state.baseline and moved.elevated == 59
    moved, changes = run(detector, [70] * 10, moved)
    assert changes == [] and moved.baseline == pytest.approx(70) and moved.elevated == 0
