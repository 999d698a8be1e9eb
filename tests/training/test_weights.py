import math

from causalsr.training.weights import DynamicWeights, dynamic_weight


def test_eq24_formula_at_given_t_and_loss():
    base, t, T, L, gamma, alpha = 0.3, 250, 1000, 1.7, 0.5, 2.0
    expected = base * (1 + gamma * math.cos(math.pi * t / T)) / (1 + math.exp(-alpha * L))
    assert math.isclose(dynamic_weight(base, t, T, L, gamma, alpha), expected, rel_tol=1e-12)


def test_weights_update_every_t_update_with_running_mean():
    w = DynamicWeights({"cf": 1.0}, gamma=0.5, alpha=1.0, t_update=4)
    initial = w["cf"]
    assert math.isclose(initial, 1.0 * 1.5 / 2)  # t=0, L=0
    for t, v in enumerate([1.0, 2.0, 3.0], start=1):
        w.observe({"cf": v})
        assert not w.maybe_update(t, 100)
        assert w["cf"] == initial  # held between updates (Alg. 2 line 22)
    w.observe({"cf": 6.0})
    assert w.maybe_update(4, 100)
    assert math.isclose(w["cf"], dynamic_weight(1.0, 4, 100, 3.0, 0.5, 1.0))  # mean of 1,2,3,6


def test_state_round_trip():
    a = DynamicWeights({"x": 2.0}, 0.5, 1.0, 2)
    a.observe({"x": 1.0})
    a.maybe_update(2, 10)
    a.observe({"x": 5.0})
    b = DynamicWeights({"x": 2.0}, 0.5, 1.0, 2)
    b.load_state_dict(a.state_dict())
    a.observe({"x": 3.0})
    b.observe({"x": 3.0})
    a.maybe_update(4, 10)
    b.maybe_update(4, 10)
    assert a["x"] == b["x"]
