"""The second-order chapter's MNIST problem: its draws and losses, written out as they were before
it drew through data.mnist.Minibatches, and its use through the one loop."""

import numpy as np
import torch

from backprop2lib.data.mnist import bundled_split
from backprop2lib.experiments.second_order import mnist_problem
from backprop2lib.optim import SGD, run
from backprop2lib.second_order.hessian import loss_and_grad, mean_loss
from backprop2lib.second_order.optimisers import MLPProblem


def test_mnist_problem_makes_the_old_draws_initialisations_and_losses():
    problem = mnist_problem(n_models=3, hidden=6, batch_size=16, n_eval=50, seed=2)
    assert problem.name == "MNIST 784-6-10" and problem.model.sizes == (784, 6, 10)
    split = bundled_split(seed=0)
    x_train, y_train = split.train.pixels(), split.train.labels
    x_test, y_test = split.test.pixels(), split.test.labels
    for step in (0, 1, 7):
        g = torch.Generator().manual_seed(2 * 1_000_003 + step)
        idx = torch.randint(len(y_train), (16,), generator=g)
        x, y = problem.batches(step)
        assert torch.equal(x, x_train[idx].expand(3, -1, -1)) and torch.equal(y, y_train[idx].expand(3, -1))
    g = torch.Generator().manual_seed(5)
    w = problem.model.flatten(problem.model.init(3, scheme="pytorch", generator=g))
    assert torch.equal(problem.init(5), w)
    eval_batch = (x_train[:50].expand(3, -1, -1), y_train[:50].expand(3, -1))
    assert torch.equal(problem.evaluate(w), mean_loss(problem.model, w, *eval_batch, loss="cross_entropy"))
    out = problem.model.forward(problem.model.unflatten(w), x_test.expand(3, -1, -1))
    assert torch.equal(problem.accuracy(w), (out.argmax(-1) == y_test).to(torch.float64).mean(1))


def test_seeded_mnist_problem_runs_in_the_one_loop_like_a_hand_written_loop():
    problem = mnist_problem(n_models=2, hidden=5, batch_size=8, n_eval=20)
    seeded = problem.seeded(1)
    assert isinstance(seeded, MLPProblem) and torch.equal(seeded.init(), problem.init(1))
    curve = run(SGD(0.5), seeded, 3)
    w = problem.init(1)
    expected = [problem.evaluate(w)]
    for step in range(1, 4):  # the loop's step t trains on minibatch t + 1
        _, grad = loss_and_grad(problem.model, w, *problem.batches(step), loss="cross_entropy")
        w = w - 0.5 * grad
        expected.append(problem.evaluate(w))
    np.testing.assert_array_equal(curve.losses, torch.stack(expected).double().numpy())
