"""A trained optimiser behind the stepper protocol (learned/stepper.py)."""

import numpy as np
import pytest
import torch

from backprop2lib.learned.optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig
from backprop2lib.learned.problems import Quadratics
from backprop2lib.learned.stepper import LearnedStepper
from backprop2lib.optim import run


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_learned_stepper_equals_calling_the_net(cell):
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(cell=cell), seed=3)
    stepper = LearnedStepper(net)
    assert stepper.name == cell.upper()
    assert LearnedStepper(net, name="mine").name == "mine"
    prob = Quadratics.sample(3, seed=1)
    theta = prob.init()
    state = stepper.init(theta)
    by_hand = prob.init()
    rnn = net.initial_state(*by_hand.shape, device=by_hand.device, dtype=by_hand.dtype)
    for t in range(5):
        _, grad = prob.loss_and_grad(theta, t)
        theta = stepper.step(theta, grad, state)
        _, g = prob.loss_and_grad(by_hand, t)
        with torch.no_grad():
            update, rnn = net(g, rnn)
        by_hand = by_hand + update
        assert not theta.requires_grad
    torch.testing.assert_close(theta, by_hand, rtol=0, atol=0)
    curve = run(stepper, prob, 5)
    assert curve.name == cell.upper()
    assert np.isfinite(curve.losses).all()


def test_learned_stepper_rejects_other_nets():
    with pytest.raises(ValueError, match="net"):
        LearnedStepper(torch.nn.Linear(1, 1))
