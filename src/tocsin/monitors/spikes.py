"""Error-rate spike detection: an EWMA baseline, a factor over it, and flap damping. Pure: no I/O.

The state is a small value the caller stores (a row of `error_rate_states`), so a restarted process
keeps its learned baseline. A sample is high at `factor` times the baseline (raise after `raise_after`
in a row) and elevated at `clear_factor` times (halfway, by default). Elevated samples are not learned
and a raised spike freezes the baseline, so a spike never becomes the new normal behind the on-call
engineer's back; it clears after `clear_after` samples in a row below the elevated level.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Change = Literal["raise", "clear"]
TIMES = "\N{MULTIPLICATION SIGN}"
# A baseline learned from noisy counts wanders by a few percent, so "factor times the baseline" is taken
# within 10%: a true jump to 5x is then raised every time, not on the coin flip of the baseline's noise.
NOISE = 0.9


@dataclass(frozen=True, slots=True)
class SpikeSettings:
    alpha: float = 0.1  # EWMA weight of a new sample once warm
    min_count: float = 10  # samples below this are never a spike (low volume)
    factor: float = 5.0  # a spike is at least this multiple of the baseline ...
    floor: float = 1.0  # ... taken as at least this, so a near-zero baseline is not a hair trigger
    clear_factor: float = 3.0  # a raised spike clears below this multiple of the baseline
    warmup: int = 10  # samples learned before any spike is raised
    raise_after: int = 2  # consecutive high samples to raise
    clear_after: int = 3  # consecutive normal samples to clear
    relearn_after: int = 60  # consecutive elevated samples, never a spike, after which they are normal

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if not 1 <= self.clear_factor < self.factor:
            raise ValueError("clear_factor must be at least 1 and below factor")
        if min(self.warmup, self.raise_after, self.clear_after, self.relearn_after) < 1:
            raise ValueError("warmup, raise_after, clear_after and relearn_after must be at least 1")


@dataclass(frozen=True, slots=True)
class SpikeState:
    baseline: float | None = None
    samples: int = 0  # samples learned into the baseline
    above: int = 0  # consecutive high samples while not raised
    elevated: int = 0  # consecutive elevated (not learned) samples while not raised
    below: int = 0  # consecutive normal samples while raised
    raised: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """What one sample did: the new state, and a raise or clear if the spike changed."""

    state: SpikeState
    value: float
    baseline: float  # the baseline the sample was judged against
    change: Change | None = None


class SpikeDetector:
    """Judges one series of samples (errors per minute, or any rate) against its learned baseline."""

    def __init__(self, settings: SpikeSettings) -> None:
        self.settings = settings

    def reference(self, state: SpikeState) -> float:
        """The baseline as the thresholds use it: never below the floor."""
        return max(state.baseline or 0.0, self.settings.floor)

    def threshold(self, state: SpikeState) -> float:
        """The smallest sample that counts as high (towards raising): about `factor` times the baseline."""
        return max(self.reference(state) * self.settings.factor * NOISE, self.settings.min_count)

    def elevated_level(self, state: SpikeState) -> float:
        """The smallest sample that is not normal: not learned, and no step towards clearing."""
        return max(self.reference(state) * self.settings.clear_factor, self.settings.min_count)

    def observe(self, state: SpikeState, value: float) -> Observation:
        """Judge `value` and return the next state."""
        s = self.settings
        value = max(float(value), 0.0)
        if state.baseline is None:
            return Observation(replace(state, baseline=value, samples=1), value, value)
        baseline = state.baseline
        high = value >= self.threshold(state)
        elevated = value >= self.elevated_level(state)
        if state.raised:
            if elevated:
                return Observation(replace(state, below=0), value, baseline)
            if state.below + 1 >= s.clear_after:
                return Observation(replace(state, raised=False, below=0), value, baseline, "clear")
            return Observation(replace(state, below=state.below + 1), value, baseline)
        if elevated and state.samples >= s.warmup:
            # Not learned, so a spike cannot lift its own baseline while it builds up.
            above = state.above + 1 if high else 0
            if above >= s.raise_after:
                raised = replace(state, raised=True, above=0, below=0, elevated=0)
                return Observation(raised, value, baseline, "raise")
            if state.elevated + 1 >= s.relearn_after:
                # Elevated this long without a spike: the normal level has moved, so start again from it.
                return Observation(replace(state, baseline=value, above=0, elevated=0), value, baseline)
            return Observation(replace(state, above=above, elevated=state.elevated + 1), value, baseline)
        samples = state.samples + 1
        weight = max(s.alpha, 1.0 / samples)  # a plain mean until 1/alpha samples, then the EWMA
        learned = baseline + weight * (value - baseline)
        return Observation(
            replace(state, baseline=learned, samples=samples, above=0, elevated=0), value, baseline
        )


def number(value: float) -> str:
    """A rate as people read it: 250, 48, 3.5, 0.052."""
    if value == float("inf"):
        return "\N{INFINITY}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2g}"


def describe(what: str, observation: Observation, unit: str, floor: float = 0.0) -> str:
    """`api errors 250/min vs baseline 48/min (5.2x)`, with a multiplication sign for the x."""
    base = max(observation.baseline, floor)
    ratio = observation.value / base if base > 0 else float("inf")
    return (
        f"{what} errors {number(observation.value)}{unit} vs baseline {number(observation.baseline)}{unit} "
        f"({number(ratio) if ratio >= 10 else f'{ratio:.1f}'}{TIMES})"
    )
