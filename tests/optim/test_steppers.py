"""The hand-designed steppers (optim/steppers.py): every update equals torch.optim's, row by row."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.learned.problems import Quadratics
from backprop2lib.optim.steppers import NAG, SGD, STEPPERS, Adam, RMSprop


def quadratics(n=4, seed=0):
    return Quadratics.sample(n, seed=seed, dtype=torch.float64)


# ------------------------------------------------------------------ baselines vs torch.optim

TORCH_EQUIVALENTS = [
    (SGD(0.003), lambda p: torch.optim.SGD(p, lr=0.003)),
    (NAG(0.002), lambda p: torch.optim.SGD(p, lr=0.002, momentum=0.9, nesterov=True)),
    (NAG(0.001, momentum=0.5), lambda p: torch.optim.SGD(p, lr=0.001, momentum=0.5, nesterov=True)),
    (RMSprop(0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    (Adam(0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    (Adam(0.02, betas=(0.8, 0.99), eps=1e-6), lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
]


@pytest.mark.parametrize("stepper, make_torch", TORCH_EQUIVALENTS, ids=lambda x: getattr(x, "name", ""))
def test_baseline_matches_torch_optim_instance_by_instance(stepper, make_torch):
    prob = quadratics(3)
    theta = prob.init()
    state = stepper.init(theta)
    for t in range(20):
        _, grad = prob.loss_and_grad(theta, t)
        theta = stepper.step(theta, grad, state)
    assert state["t"] == 20
    for b in range(prob.n_instances):
        single = prob.subset(slice(b, b + 1))
        p = torch.nn.Parameter(single.init()[0].clone())
        opt = make_torch([p])
        for t in range(20):
            opt.zero_grad()
            single.loss(p[None], t).sum().backward()
            opt.step()
        torch.testing.assert_close(theta[b], p.detach(), rtol=1e-10, atol=1e-12)
    assert not torch.equal(theta, prob.init())


TORCH_BY_NAME = {
    "SGD": lambda p, lr: torch.optim.SGD(p, lr=lr),
    "NAG": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
    "RMSprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr),
    "Adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
}


@pytest.mark.parametrize("name", sorted(TORCH_BY_NAME))
def test_registry_builds_the_named_optimiser_with_its_learning_rate(name):
    # a registry entry pointing at the wrong class, or dropping lr, gives other iterates than torch's
    stepper = STEPPERS[name](0.004)
    assert stepper.name == name
    prob = quadratics(2, seed=3)
    theta = prob.init()
    state = stepper.init(theta)
    p = torch.nn.Parameter(prob.init().clone())
    opt = TORCH_BY_NAME[name]([p], 0.004)
    for t in range(6):
        _, grad = prob.loss_and_grad(theta, t)
        theta = stepper.step(theta, grad, state)
        opt.zero_grad()
        prob.loss(p, t).sum().backward()
        opt.step()
    torch.testing.assert_close(theta, p.detach(), rtol=1e-10, atol=1e-12)
    assert set(STEPPERS) == set(TORCH_BY_NAME)


@pytest.mark.parametrize("cls", [SGD, NAG, RMSprop, Adam])
@pytest.mark.parametrize("lr", [0.0, -1e-3, math.nan, math.inf, True])
def test_bad_lr_names_the_argument(cls, lr):
    with pytest.raises(ValueError, match="lr"):
        cls(lr)


def test_bad_hyperparameters_name_the_argument():
    with pytest.raises(ValueError, match="momentum"):
        NAG(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="alpha"):
        RMSprop(0.1, alpha=1.5)
    with pytest.raises(ValueError, match="betas"):
        Adam(0.1, betas=(0.9,))
    with pytest.raises(ValueError, match="eps"):
        Adam(0.1, eps=-1.0)
    with pytest.raises(ValueError, match="grad"):
        SGD(0.1).step(torch.zeros(2, 3), torch.zeros(2, 4), {"t": 0})
