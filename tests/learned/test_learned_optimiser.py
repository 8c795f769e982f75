"""The coordinatewise learned optimiser: preprocessing, flattening, truncation, training, resuming."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.data.mnist import bundled_split
from backprop2lib.learned.meta_train import (MetaTrainConfig, meta_train, unrolled_losses,
                                             validation_loss)
from backprop2lib.learned.optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig, detach_state
from backprop2lib.learned.preprocess import preprocess_gradients
from backprop2lib.learned.problems import MNISTNets, Quadratics
from backprop2lib.optim.errors import DivergenceError

D = torch.float64


# ----------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("p", [10.0, 5.0])
def test_preprocessing_matches_its_formula_and_meets_at_the_branch_point(p):
    t = math.exp(-p)
    g = torch.tensor([3.0, -0.2, t, -t, t * (1 + 1e-9), t * (1 - 1e-9), 0.0, -1e-9, 1e-12], dtype=D)
    out = preprocess_gradients(g, p)
    for value, (a, b) in zip(g.tolist(), out.tolist()):
        if abs(value) >= t:
            assert a == pytest.approx(math.log(abs(value)) / p) and b == math.copysign(1.0, value)
        else:
            assert a == -1.0 and b == pytest.approx(math.exp(p) * value)
    # continuity at |g| = e^-p: both features agree on both sides of the branch
    just_above, just_below = out[4], out[5]
    torch.testing.assert_close(just_above, just_below, atol=1e-8, rtol=0)
    assert out[2].tolist() == pytest.approx([-1.0, 1.0]) and out[3].tolist() == pytest.approx([-1.0, -1.0])
    with pytest.raises(ValueError, match="p"):
        preprocess_gradients(g, 0.0)


def test_preprocessing_has_finite_gradients_at_zero():
    g = torch.tensor([0.0, 1e-30, 2.0], dtype=D, requires_grad=True)
    preprocess_gradients(g).sum().backward()
    assert bool(torch.isfinite(g.grad).all())


# ----------------------------------------------------------------------------- the network
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("preprocess", [None, 10.0])
def test_flattened_update_equals_one_coordinate_at_a_time(cell, preprocess):
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(cell=cell, preprocess=preprocess), seed=3).double()
    g = torch.Generator().manual_seed(0)
    B, P = 3, 5
    state = net.initial_state(B, P, dtype=D)
    per_coord = [[net.initial_state(1, 1, dtype=D) for _ in range(P)] for _ in range(B)]
    for _ in range(3):
        grad = torch.randn(B, P, generator=g, dtype=D) * 10 ** torch.randint(-6, 2, (B, P), generator=g)
        update, state = net(grad, state)
        for b in range(B):
            for k in range(P):
                u, per_coord[b][k] = net(grad[b:b + 1, k:k + 1], per_coord[b][k])
                torch.testing.assert_close(u[0, 0], update[b, k], rtol=1e-12, atol=1e-14)
    # the states are per coordinate: column b * P + k of the flat state is coordinate (b, k)
    for b in range(B):
        for k in range(P):
            for flat, single in zip(state, per_coord[b][k]):
                torch.testing.assert_close(flat[:, b * P + k], single[:, 0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("grad_enabled", [True, False])
def test_step_equals_pytorchs_cells_with_and_without_gradients(cell, grad_enabled, monkeypatch):
    import backprop2lib.learned.optimiser as optimiser_module

    monkeypatch.setattr(optimiser_module, "LSTM_KERNEL_MIN_ROWS", 1)  # the multi-layer kernel even for 14 rows
    # our coordinate-last cells (and, without gradients, the one torch.lstm call) against nn.LSTMCell/nn.GRUCell
    # called on coordinate rows, the same parameters
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(cell=cell, preprocess=10.0), seed=5).double()
    g = torch.Generator().manual_seed(1)
    grad = torch.randn(2, 7, generator=g, dtype=D) * 1e-3
    n_state = 4 if cell == "lstm" else 2
    state = tuple(torch.randn(20, 14, generator=g, dtype=D) * 0.5 for _ in range(n_state))

    def reference(grad, state):
        x = preprocess_gradients(grad.reshape(-1), 10.0)
        rows = [s.T for s in state]
        out = []
        for i, module in enumerate(net.cells):
            if cell == "lstm":
                h, c = module(x, (rows[2 * i], rows[2 * i + 1]))
                out += [h.T, c.T]
            else:
                h = module(x, rows[i])
                out.append(h.T)
            x = h
        return (net.head(x).squeeze(-1) * net.config.output_scale).reshape(grad.shape), tuple(out)

    with torch.set_grad_enabled(grad_enabled):
        update, new = net(grad, state)
        ref_update, ref_new = reference(grad, state)
    torch.testing.assert_close(update, ref_update, rtol=1e-12, atol=1e-15)
    for a, b in zip(new, ref_new):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    if grad_enabled:
        weights = torch.randn(2, 7, generator=g, dtype=D)
        ours = torch.autograd.grad((update * weights).sum() + new[-1].sum(), list(net.parameters()))
        theirs = torch.autograd.grad((ref_update * weights).sum() + ref_new[-1].sum(), list(net.parameters()))
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_compiled_step_agrees_with_the_eager_step():
    # torch.compile fuses the pointwise work: the same numbers to rounding, values and meta-gradients
    eager = CoordinatewiseOptimiser(LearnedOptimiserConfig(preprocess=10.0), seed=2).double()
    compiled = eager.copy().compile()
    g = torch.Generator().manual_seed(4)
    grads = [torch.randn(2, 6, generator=g, dtype=D) * 1e-2 for _ in range(3)]
    results = []
    for net in (eager, compiled):
        state = net.initial_state(2, 6, dtype=D)
        total = 0.0
        for grad in grads:
            update, state = net(grad, state)
            total = total + (update ** 2).sum()
        results.append((total, torch.autograd.grad(total, list(net.parameters()))))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-14)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_initialisation_forget_bias_small_head_and_seed():
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(), seed=1)
    h = net.config.hidden
    for c in net.cells:
        assert torch.all(c.bias_ih[h:2 * h] + c.bias_hh[h:2 * h] == 1.0)
    assert float(net.head.weight.detach().abs().max()) <= net.config.init_scale / math.sqrt(h) + 1e-9
    assert float(net.head.bias.detach().abs().max()) == 0.0
    other = CoordinatewiseOptimiser(LearnedOptimiserConfig(), seed=1)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), other.parameters()))
    assert not torch.equal(net.cells[0].weight_ih, CoordinatewiseOptimiser(seed=2).cells[0].weight_ih)


def test_bad_configuration_and_shapes_are_named():
    with pytest.raises(ValueError, match="cell"):
        LearnedOptimiserConfig(cell="lmu")
    with pytest.raises(ValueError, match="hidden"):
        LearnedOptimiserConfig(hidden=0)
    with pytest.raises(ValueError, match="preprocess"):
        LearnedOptimiserConfig(preprocess=-1.0)
    with pytest.raises(ValueError, match="output_scale"):
        LearnedOptimiserConfig(output_scale=0.0)
    net = CoordinatewiseOptimiser()
    with pytest.raises(ValueError, match="grad"):
        net(torch.zeros(5), net.initial_state(1, 5))
    with pytest.raises(ValueError, match="state"):
        net(torch.zeros(2, 5), net.initial_state(1, 5))
    with pytest.raises(ValueError, match="unroll"):
        MetaTrainConfig(episode_length=100, unroll=30)
    with pytest.raises(ValueError, match="meta_lr"):
        MetaTrainConfig(meta_lr=0.0)


# ----------------------------------------------------------------------------- problems
def test_quadratic_gradient_matches_autograd_and_draws_differ():
    q = Quadratics.sample(4, dim=6, seed=1, dtype=D)
    theta = torch.randn(4, 6, dtype=D, requires_grad=True)
    loss = q.loss(theta)
    grad = torch.autograd.grad(loss.sum(), theta)[0]
    value, analytic = q.loss_and_grad(theta.detach())
    torch.testing.assert_close(value, loss.detach())
    torch.testing.assert_close(analytic, grad)
    u = Quadratics.sample(4, draw="uniform", seed=1)
    assert float(u.W.min()) >= 0 and float(u.W.max()) < 1
    with pytest.raises(ValueError, match="draw"):
        Quadratics.sample(2, draw="cauchy")


def test_mnist_problem_gradient_and_paired_minibatches():
    data = bundled_split().validation
    nets = MNISTNets.sample(2, data, seed=5, dtype=D)
    theta = nets.init().requires_grad_()
    loss = nets.loss(theta, 3)
    grad = torch.autograd.grad(loss.sum(), theta)[0]
    value, explicit = nets.loss_and_grad(theta.detach(), 3)
    torch.testing.assert_close(value, loss.detach())
    torch.testing.assert_close(explicit, grad)
    again = MNISTNets.sample(2, data, seed=5, dtype=D)
    assert torch.equal(again.batch(7)[1], nets.batch(7)[1]) and not torch.equal(nets.batch(7)[1], nets.batch(8)[1])
    assert abs(float(nets.theta0.std()) - 0.01) < 0.002  # N(0, 0.01^2) weights, as in the paper
    relu = MNISTNets.sample(1, data, hidden=(20, 20), activation="relu")
    assert relu.model.sizes == (784, 20, 20, 10) and relu.model.activation == "relu"


def test_mnist_nets_make_the_draws_and_losses_of_the_code_before_sharing():
    """MNISTNets as it stood before it drew through data.mnist.Minibatches, written out call by call."""
    from backprop2lib.second_order.hessian import loss_grad_and_block_hessians, output_loss

    data = bundled_split().validation
    nets = MNISTNets.sample(6, data, seed=3, batch_size=8)
    x_all, y_all = data.pixels(), data.labels
    g = torch.Generator().manual_seed(3)
    theta0 = (0.01 * torch.randn(6, nets.n_params, generator=g, dtype=torch.float64)).to(torch.float32)
    assert torch.equal(nets.theta0, theta0)
    for step in (0, 1, 5):
        for part, (start, stop) in ((nets, (0, 6)), (nets.chunk(2, 5), (2, 5))):
            g = torch.Generator().manual_seed(3 * 1_000_003 + 7919 * step + 1)
            idx = torch.randint(len(y_all), (6, 8), generator=g)[start:stop]
            x, y = part.batch(step)
            assert torch.equal(x, x_all[idx]) and torch.equal(y, y_all[idx])
            theta = theta0[start:stop]
            out = part.model.forward(part.model.unflatten(theta), x, check=False)
            assert torch.equal(part.loss(theta, step), output_loss(out, y, "cross_entropy").mean(1))
            with torch.no_grad():
                value, grad, _ = loss_grad_and_block_hessians(part.model, theta, x, y, None, loss="cross_entropy")
            got_value, got_grad = part.loss_and_grad(theta, step)
            assert torch.equal(got_value, value) and torch.equal(got_grad, grad)


# ----------------------------------------------------------------------------- meta-training
def _quadratic_setup(episodes=4, **kw):
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(preprocess=None, output_scale=1.0), seed=0)
    config = MetaTrainConfig(episodes=episodes, episode_length=20, unroll=5, meta_lr=3e-3, validate_every=2,
                             checkpoint_every=1, **kw)
    return net, config, (lambda e: Quadratics.sample(16, dim=5, seed=e)), Quadratics.sample(8, dim=5, seed=999)


def test_truncation_detaches_no_gradient_leaks_across_truncations():
    # the meta-gradient of the second truncation's loss must equal the one computed from the
    # detached carried-over values alone: a leak would add terms through the first truncation
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(preprocess=None, output_scale=1.0), seed=0).double()
    q = Quadratics.sample(3, dim=4, seed=0, dtype=D)
    theta = q.init()
    state = net.initial_state(3, 4, dtype=D)
    for step in range(5):  # first truncation, with graph
        _, grad = q.loss_and_grad(theta.detach(), step)
        update, state = net(grad, state)
        theta = theta + update
    theta_c, state_c = theta.detach(), detach_state(state)
    assert not theta_c.requires_grad and not any(s.requires_grad for s in state_c)

    def second(theta, state):
        loss = 0.0
        for step in range(5, 10):
            _, grad = q.loss_and_grad(theta.detach(), step)
            update, state = net(grad, state)
            theta = theta + update
            loss = loss + q.loss(theta).mean()
        return torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)

    carried = second(theta_c, state_c)
    fresh = second(theta_c.clone(), tuple(s.clone() for s in state_c))
    leaky = second(theta, state)  # without the detach, gradients flow into the first truncation
    for a, b in zip(carried, fresh):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, c) for a, c in zip(carried, leaky) if a is not None)


def test_meta_training_on_quadratics_beats_the_untrained_optimiser():
    net, config, sample, validation = _quadratic_setup(episodes=30)
    before = validation_loss(net, validation, 20)
    result = meta_train(net, sample, validation, config, progress=False)
    after = validation_loss(result.net, validation, 20)
    assert after < 0.5 * before
    assert result.best_validation == pytest.approx(after)
    test = Quadratics.sample(8, dim=5, seed=12345)
    losses = unrolled_losses(result.net, test, 20)
    assert float(losses[-1].mean()) < 0.5 * float(losses[0].mean())  # it optimises held-out instances


def test_resuming_from_a_checkpoint_gives_the_same_numbers(tmp_path):
    net, config, sample, validation = _quadratic_setup(episodes=6)
    straight = meta_train(net, sample, validation, config, progress=False)
    net2, *_ = _quadratic_setup()
    path = tmp_path / "run.pt"
    partial = meta_train(net2, sample, validation, config, checkpoint=path, stop_after=4, progress=False)
    assert len(partial.episode_losses) == 4 and path.exists()
    net3, *_ = _quadratic_setup()  # a fresh process: new net object, state comes from the file
    resumed = meta_train(net3, sample, validation, config, checkpoint=path, progress=False)
    assert resumed.episode_losses == straight.episode_losses
    assert resumed.validation == straight.validation and resumed.best_episode == straight.best_episode
    for a, b in zip(resumed.net.parameters(), straight.net.parameters()):
        assert torch.equal(a, b)
    # a different configuration refuses the checkpoint, a corrupt one says so
    other = MetaTrainConfig(**{**config.__dict__, "meta_lr": 1e-2})
    with pytest.raises(ValueError, match="checkpoint"):
        meta_train(net3, sample, validation, other, checkpoint=path, progress=False)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint"):
        meta_train(net3, sample, validation, config, checkpoint=path, progress=False)


def test_a_diverging_meta_loss_is_skipped_counted_and_then_reported():
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(preprocess=None, output_scale=1e6), seed=0)
    with torch.no_grad():
        net.head.bias.fill_(1e30)  # every update overflows the quadratic
    config = MetaTrainConfig(episodes=3, episode_length=10, unroll=5, validate_every=3, max_bad_truncations=1)
    sample = lambda e: Quadratics.sample(4, dim=3, seed=e)
    with pytest.raises(DivergenceError, match="episode 1"):
        meta_train(net, sample, Quadratics.sample(2, dim=3, seed=9), config, progress=False)


# ----------------------------------------------------------------------------- chunked evaluation
def test_chunked_evaluation_equals_the_whole_set():
    from backprop2lib.learned.stepper import LearnedStepper
    from backprop2lib.optim import Adam, run

    data = bundled_split().test
    nets = MNISTNets.sample(5, data, seed=4, dtype=D, batch_size=16)
    # a chunk sees exactly the instances' own initialisations and minibatches
    part = nets.chunk(2, 4)
    assert torch.equal(part.init(), nets.init()[2:4])
    assert torch.equal(part.batch(3)[1], nets.batch(3)[1][2:4])
    lstm = LearnedStepper(CoordinatewiseOptimiser(seed=1).double())
    for stepper in (lstm, Adam(0.01)):
        whole = run(stepper, nets, 6)
        chunked = run(stepper, nets, 6, chunk_size=2)
        np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-10, atol=1e-12)
        assert chunked.name == whole.name and chunked.losses.shape == (7, 5)
    q = Quadratics.sample(7, dim=4, seed=2, dtype=D)
    np.testing.assert_allclose(run(lstm, q, 5, chunk_size=3).losses, run(lstm, q, 5).losses, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="chunk_size"):
        run(lstm, q, 5, chunk_size=0)
    with pytest.raises(ValueError, match="start, stop"):
        nets.chunk(3, 3)


def test_random_scaling_is_a_change_of_variables_with_the_chain_rule_gradient():
    from backprop2lib.learned.problems import RandomlyScaled

    q = Quadratics.sample(3, dim=4, seed=0, dtype=D)
    scaled = RandomlyScaled(q, 3.0, seed=7)
    c = scaled.c
    assert c.shape == (3, 4) and float(c.min()) >= math.exp(-3) and float(c.max()) <= math.exp(3)
    assert float(c.log().std()) > 0.5  # the scales are spread, not all near 1
    torch.testing.assert_close(scaled.init() * c, q.init())  # the same starting point of the original problem
    theta = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=D, requires_grad=True)
    value, grad = scaled.loss_and_grad(theta.detach())
    auto = torch.autograd.grad(q.loss(c * theta).sum(), theta)[0]
    torch.testing.assert_close(grad, auto)
    torch.testing.assert_close(value, q.loss(c * theta.detach()))
    torch.testing.assert_close(scaled.loss(theta.detach()), value)
    assert torch.equal(RandomlyScaled(q, 3.0, seed=7).c, c) and not torch.equal(RandomlyScaled(q, 3.0, seed=8).c, c)
    assert torch.equal(RandomlyScaled(q, 0.0, seed=7).c, torch.ones(3, 4, dtype=D))
    with pytest.raises(ValueError, match="log_range"):
        RandomlyScaled(q, -1.0, seed=0)
