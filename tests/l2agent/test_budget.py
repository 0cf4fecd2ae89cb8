"""The data path's duty cycle: it never spends more than its share of wall time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2agent.responder.budget import DataPathBudget, DutyCycle


def test_a_quiet_data_path_never_rests() -> None:
    cycle = DutyCycle(DataPathBudget(share=0.5, window=0.02), now=0.0)
    t = 0.0
    for _ in range(1000):  # 0.1 ms of work every 1 ms: 10 %
        assert cycle.spent(t, t + 0.0001) is None
        t += 0.001
    assert cycle.rests == 0


def test_a_saturated_data_path_rests_for_the_rest_of_its_share() -> None:
    cycle = DutyCycle(DataPathBudget(share=0.5, window=0.02), now=0.0)
    t, busy, rests = 0.0, 0.0, 0
    while t < 1.0:  # back-to-back 1 ms batches, resting whenever told to
        resume = cycle.spent(t, t + 0.001)
        busy += 0.001
        t += 0.001
        if resume is not None:
            assert resume > t
            t, rests = resume, rests + 1
    assert busy / t == pytest.approx(0.5, abs=0.02)
    assert rests == cycle.rests > 10


@given(
    share=st.floats(0.05, 1.0),
    work=st.lists(st.tuples(st.floats(0, 0.005), st.floats(0, 0.01)), min_size=1, max_size=300),
)
def test_busy_time_stays_within_share_plus_one_burst(
    share: float, work: list[tuple[float, float]]
) -> None:
    budget = DataPathBudget(share=share, window=0.02)
    cycle = DutyCycle(budget, now=0.0)
    t = busy = 0.0
    for length, idle in work:
        resume = cycle.spent(t, t + length)
        busy += length
        t += length
        if resume is not None:
            t = resume
        t += idle
    # At most the starting burst plus one batch beyond the share of elapsed time.
    assert busy <= share * t + share * budget.window + max(w for w, _ in work) + 1e-9


def test_budget_checks_itself() -> None:
    for bad in ({"share": 0}, {"share": 1.5}, {"window": 0}, {"frames_per_wakeup": 0}):
        with pytest.raises(ValueError):
            DataPathBudget(**bad)  # type: ignore[arg-type]
