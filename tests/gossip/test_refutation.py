"""gossip.refutation.DirectRefutations: one burst per window, and a refutation that comes
inside the window is held for its end, not dropped (the soak's false deaths)."""

from __future__ import annotations

from gossip.messages import Alive
from gossip.refutation import DirectRefutations


def _alive(inc: int) -> Alive:
    return Alive(incarnation=inc, node="n1", addr=bytes([192, 0, 2, 2]), port=7946)


def test_the_first_refutation_goes_out_at_once_and_opens_a_window() -> None:
    r = DirectRefutations(next_allowed=0.0)
    assert r.offer(_alive(2), 1.0, 0.04) == _alive(2)
    assert r.next_allowed == 1.04
    assert r.next_deadline() is None  # nothing held: no tick needed for refutations


def test_a_refutation_inside_the_window_is_held_until_it_ends() -> None:
    r = DirectRefutations(next_allowed=0.0)
    r.offer(_alive(2), 1.0, 0.04)
    assert r.offer(_alive(3), 1.01, 0.04) is None
    assert r.next_deadline() == 1.04
    assert r.due(1.039, 0.04) is None
    assert r.due(1.04, 0.04) == _alive(3)
    assert r.next_allowed == 1.08  # the held one opened a new window
    assert r.due(2.0, 0.04) is None and r.next_deadline() is None


def test_only_the_newest_held_refutation_goes_out() -> None:
    r = DirectRefutations(next_allowed=0.0)
    r.offer(_alive(2), 1.0, 0.04)
    for inc in (3, 4, 5):
        assert r.offer(_alive(inc), 1.01, 0.04) is None
    assert r.due(1.05, 0.04) == _alive(5)


def test_a_burst_of_accusations_costs_one_burst_per_window() -> None:
    r = DirectRefutations(next_allowed=0.0)
    sent = []
    t = 0.0
    for i in range(1000):  # an accusation every millisecond for a second
        t = i * 0.001
        for alive in (r.due(t, 0.04), r.offer(_alive(i + 1), t, 0.04)):
            if alive is not None:
                sent.append(alive)
    assert 25 <= len(sent) <= 26  # 1 s / 40 ms windows
    last = r.due(t + 0.04, 0.04)
    assert last == _alive(1000)  # and the newest still gets out when the window ends
