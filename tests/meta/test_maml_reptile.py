import numpy as np
import pytest
import torch

from backprop2lib.meta import (DivergenceError, evaluate_adaptation, from_mse_lr, maml_loss, predict_after_adaptation,
                               reptile_update, sgd_adapt, train_maml, train_pretrained, train_reptile)
from backprop2lib.meta.maml import MAML_INNER_LR
from backprop2lib.meta.reference import maml_loss_per_task, reptile_update_per_task
from backprop2lib.meta.training import make_adam
from backprop2lib.models import MLP
from backprop2lib.tasks import SinusoidTasks

D = torch.float64


def _setup(activation="relu", T=5, K=6, seed=0):
    model = MLP((1, 12, 12, 1), activation)
    g = torch.Generator().manual_seed(seed)
    theta = model.flatten(model.init(generator=g, dtype=D)).requires_grad_(True)
    batch = SinusoidTasks.maml().sample(T, K, K, generator=g, dtype=D)
    return model, theta, batch


@pytest.mark.parametrize("activation", ["relu", "tanh", "gaussian"])
@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_equals_per_task_double_backward(activation, steps):
    model, theta, batch = _setup(activation)
    (ours,) = torch.autograd.grad(maml_loss(model, theta, batch, inner_steps=steps, inner_lr=0.1), theta)
    (ref,) = torch.autograd.grad(maml_loss_per_task(model, theta, batch, inner_steps=steps, inner_lr=0.1), theta)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)


def test_first_order_maml_matches_its_definition_and_differs_from_second_order():
    model, theta, batch = _setup("tanh")
    (fo,) = torch.autograd.grad(maml_loss(model, theta, batch, inner_steps=2, inner_lr=0.2, first_order=True), theta)
    (ref,) = torch.autograd.grad(
        maml_loss_per_task(model, theta, batch, inner_steps=2, inner_lr=0.2, first_order=True), theta)
    torch.testing.assert_close(fo, ref, rtol=1e-9, atol=1e-12)
    # by definition: the mean over tasks of the query gradient at the adapted parameters
    with torch.no_grad():
        phi = sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=2, lr=0.2)
        _, g_query = model.loss_and_grad(model.unflatten(phi), batch.x_query, batch.y_query)
    torch.testing.assert_close(fo, model.flatten(tuple(g.mean(0) for g in g_query)), rtol=1e-9, atol=1e-12)
    (so,) = torch.autograd.grad(maml_loss(model, theta, batch, inner_steps=2, inner_lr=0.2), theta)
    assert float((fo - so).abs().max()) > 1e-4


def test_batched_maml_loss_equals_mean_of_one_task_at_a_time():
    model, theta, batch = _setup("relu", T=4)
    whole = maml_loss(model, theta, batch, inner_steps=2)
    singles = torch.stack([maml_loss(model, theta, batch[t], inner_steps=2) for t in range(4)])
    torch.testing.assert_close(whole, singles.mean())


def test_reptile_update_matches_its_definition():
    model, theta, batch = _setup("tanh")
    theta = theta.detach()
    ours, _ = reptile_update(model, theta, batch.x_all, batch.y_all, inner_steps=3, inner_lr=0.1, outer_lr=0.3)
    ref = reptile_update_per_task(model, theta, batch.x_all, batch.y_all, inner_steps=3, inner_lr=0.1, outer_lr=0.3)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    # outer step 1 is batch Reptile: theta becomes the mean adapted parameters
    full, _ = reptile_update(model, theta, batch.x_all, batch.y_all, inner_steps=3, inner_lr=0.1, outer_lr=1.0)
    phi = sgd_adapt(model, theta, batch.x_all, batch.y_all, steps=3, lr=0.1)
    torch.testing.assert_close(full, phi.mean(0))


def test_sgd_adapt_zero_steps_and_bad_arguments():
    model, theta, batch = _setup()
    same = sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=0, lr=0.1)
    assert same.shape == (5, model.n_params) and torch.equal(same, theta.detach().expand(5, -1))
    with pytest.raises(ValueError, match="steps: expected an int >= 0"):
        sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="lr: expected a positive"):
        sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="start: expected flat parameters"):
        sgd_adapt(model, model.unflatten(theta)[0], batch.x_support, batch.y_support, steps=1, lr=0.1)


def test_training_is_reproducible():
    model, tasks = MLP((1, 20, 20, 1)), SinusoidTasks.maml()
    runs = [train_maml(model, tasks, iterations=50, meta_batch=10, generator=torch.Generator().manual_seed(1),
                       progress=False) for _ in range(2)]
    assert np.array_equal(runs[0].losses, runs[1].losses)
    assert runs[0].method == "MAML" and runs[0].config["iterations"] == 50
    assert runs[0].params.shape == (model.n_params,) and torch.equal(runs[0].params, runs[1].params)


@pytest.mark.parametrize("trainer", [train_maml, train_pretrained, train_reptile])
def test_every_trainer_lowers_the_held_out_error_after_one_step(trainer):
    model, tasks = MLP((1, 20, 20, 1)), SinusoidTasks.maml()
    init = model.flatten(model.init(generator=torch.Generator().manual_seed(2)))
    r = trainer(model, tasks, iterations=600, init=init, generator=torch.Generator().manual_seed(2), progress=False)
    assert r.params.shape == init.shape  # one convention: a flat start in, a flat start out
    before = evaluate_adaptation(model, init, tasks, n_tasks=200, steps=1, grid_points=100).summary(1).mean
    after = evaluate_adaptation(model, r.params, tasks, n_tasks=200, steps=1, grid_points=100).summary(1).mean
    assert after < 0.8 * before


def test_trainers_reject_a_tuple_start_and_unknown_keywords():
    model, tasks = MLP((1, 8, 1)), SinusoidTasks.maml()
    init = model.init(generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"init: expected a flat start \[25\]"):
        train_maml(model, tasks, iterations=1, init=init, progress=False)
    with pytest.raises(TypeError, match="k_shots"):
        train_reptile(model, tasks, iterations=1, k_shots=5, progress=False)


def test_divergence_is_reported_with_where_it_happened():
    model, tasks = MLP((1, 20, 20, 1)), SinusoidTasks.maml()
    with pytest.raises(DivergenceError, match=r"MAML: training loss became (nan|inf) at iteration \d+"):
        train_maml(model, tasks, iterations=20, inner_lr=20.0, inner_steps=10, progress=False)


def test_evaluation_counts_diverged_tasks():
    model = MLP((1, 20, 20, 1))
    theta = model.flatten(model.init(generator=torch.Generator().manual_seed(0)))
    tasks = SinusoidTasks.maml()
    curve = evaluate_adaptation(model, theta, tasks, n_tasks=50, steps=3, inner_lr=20.0, grid_points=50)
    assert curve.losses.shape == (4, 50)
    s = curve.summary(3)
    assert s.n_diverged > 0 and s.n + s.n_diverged == 50
    assert curve.summary(0).n_diverged == 0
    # a stable step size diverges nowhere and lowers the error on average
    ok = evaluate_adaptation(model, theta, tasks, n_tasks=50, steps=3, inner_lr=0.02, grid_points=50)
    assert ok.summary(3).n_diverged == 0 and ok.summary(3).mean < ok.summary(0).mean


def test_evaluation_is_paired_and_batched_equals_one_task_at_a_time():
    model = MLP((1, 10, 1))
    theta = model.flatten(model.init(generator=torch.Generator().manual_seed(0)))
    tasks = SinusoidTasks.maml()
    a = evaluate_adaptation(model, theta, tasks, n_tasks=6, steps=2, grid_points=30, seed=5)
    b = evaluate_adaptation(model, theta, tasks, n_tasks=6, steps=2, grid_points=30, seed=5)
    assert np.array_equal(a.losses, b.losses)
    batch = tasks.sample(6, 10, 0, generator=torch.Generator().manual_seed(5))
    x = tasks.grid(30).expand(6, 30).unsqueeze(-1)
    preds = predict_after_adaptation(model, theta, batch, x, steps=[2])
    for t in range(6):
        one = predict_after_adaptation(model, theta, batch[t], x[t : t + 1], steps=[2])
        torch.testing.assert_close(preds[2][t : t + 1], one[2], rtol=1e-5, atol=1e-6)
        target = tasks.target(batch.truth[t : t + 1], x[t : t + 1])
        assert abs(float((one[2] - target).pow(2).mean()) - a.losses[2, t]) < 1e-4


# ============================================ one loss convention: the same steps as before
# The references below are the library's code before inner steps were steps on E: a step lr on
# the MSE, applied with torch.add(p, g, alpha=-lr) to the explicit MSE gradient. A published
# MSE step α is now passed as from_mse_lr(α) = 2α (one output); the steps must agree bit for bit.

def _old_step(model, params, x, y, lr, first_order=False):
    with torch.set_grad_enabled(torch.is_grad_enabled() and not first_order):
        _, grads = model.loss_and_grad(params, x, y, check=False, need_loss=False)
    return tuple(torch.add(p, g, alpha=-lr) for p, g in zip(params, grads))


def _old_adapt(model, params, x, y, steps, lr, first_order=False):
    for _ in range(steps):
        params = _old_step(model, params, x, y, lr, first_order)
    return params


def _old_meta_loss(model, theta, batch, steps, lr, first_order=False):
    phi = _old_adapt(model, theta, batch.x_support, batch.y_support, steps, lr, first_order)
    return (model.forward(phi, batch.x_query, check=False) - batch.y_query).pow(2).mean()


@pytest.mark.parametrize("mse_lr", [0.01, 0.05, 0.1, 0.3])
def test_converted_steps_are_the_old_mse_steps_bit_for_bit(mse_lr):
    model, theta, batch = _setup("tanh")
    lr = from_mse_lr(mse_lr)
    assert lr == 2 * mse_lr
    old = _old_adapt(model, model.unflatten(theta.detach()), batch.x_support, batch.y_support, 3, mse_lr)
    new = sgd_adapt(model, theta.detach(), batch.x_support, batch.y_support, steps=3, lr=lr)
    assert torch.equal(new, model.flatten(old))
    for first_order in (False, True):
        views = tuple(p.detach().clone().requires_grad_(True) for p in model.unflatten(theta))
        old_grad = torch.autograd.grad(_old_meta_loss(model, views, batch, 2, mse_lr, first_order), views)
        (new_grad,) = torch.autograd.grad(maml_loss(model, theta, batch, inner_steps=2, inner_lr=lr,
                                                    first_order=first_order), theta)
        assert torch.equal(new_grad, model.flatten(old_grad))
    old_new, _ = reptile_update(model, theta.detach(), batch.x_all, batch.y_all, inner_steps=3, inner_lr=lr,
                                outer_lr=0.4)
    phi = _old_adapt(model, model.unflatten(theta.detach()), batch.x_all, batch.y_all, 3, mse_lr)
    expected = tuple(torch.lerp(p, f.mean(0), 0.4) for p, f in zip(model.unflatten(theta.detach()), phi))
    assert torch.equal(old_new, model.flatten(expected))


def test_a_step_on_e_is_the_gradient_of_half_the_squared_error():
    # the meaning of lr, written out with autograd per task, for one output and for three
    for sizes in ((1, 6, 1), (2, 5, 3)):
        model = MLP(sizes, "tanh")
        g = torch.Generator().manual_seed(1)
        theta = torch.randn(model.n_params, generator=g, dtype=D)
        x = torch.randn(4, 7, sizes[0], generator=g, dtype=D)
        y = torch.randn(4, 7, sizes[-1], generator=g, dtype=D)
        ours = sgd_adapt(model, theta, x, y, steps=1, lr=0.3)
        for t in range(4):
            w = theta.clone().requires_grad_(True)
            out = model.forward(model.unflatten(w), x[t : t + 1])
            e = 0.5 * (out - y[t : t + 1]).pow(2).sum(-1).mean()
            (grad,) = torch.autograd.grad(e, w)
            torch.testing.assert_close(ours[t], theta - 0.3 * grad, rtol=1e-12, atol=1e-14)
    assert from_mse_lr(0.01, outputs=2) == 0.01 and from_mse_lr(0.03, outputs=3) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="outputs"):
        from_mse_lr(0.01, outputs=0)


def test_the_published_maml_step_is_converted_exactly():
    assert MAML_INNER_LR == from_mse_lr(0.01) == 0.02  # Finn et al.'s α = 0.01 on the MSE


def test_trained_starts_and_curves_equal_the_old_convention_bit_for_bit():
    """Chapter 1's pipeline in float64: MAML and Reptile trained and evaluated with the converted
    step, against the same loops written with the old MSE step (α = 0.01, evaluation 0.01 and 0.05)."""
    model, tasks = MLP((1, 10, 10, 1)), SinusoidTasks.maml()
    init = model.init(generator=torch.Generator().manual_seed(3), dtype=D)
    common = dict(iterations=5, meta_batch=4, k_shot=5, k_query=5, init=model.flatten(init), progress=False)

    def stream(seed):
        return tasks.stream(4, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=D)

    # MAML: Adam on the tuple view, as the library did before
    maml = train_maml(model, tasks, inner_lr=from_mse_lr(0.01), generator=torch.Generator().manual_seed(1), **common)
    theta = tuple(p.clone().requires_grad_(True) for p in init)
    adam = make_adam(theta, 1e-3)  # the library's Adam, then as now
    batches = stream(1)
    for _ in range(5):
        b = next(batches)
        loss = _old_meta_loss(model, theta, b, 1, 0.01)
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
    assert torch.equal(maml.params, model.flatten(tuple(p.detach() for p in theta)))

    # Reptile: lerp towards the mean of the adapted parameters, outer step annealed
    reptile = train_reptile(model, tasks, inner_lr=from_mse_lr(0.01), generator=torch.Generator().manual_seed(2),
                            **common)
    theta = tuple(p.clone() for p in init)
    batches = stream(2)
    for i in range(5):
        b = next(batches)
        phi = _old_adapt(model, theta, b.x_all, b.y_all, 5, 0.01, first_order=True)
        theta = tuple(torch.lerp(p, f.mean(0), 1.0 * (1 - i / 5)) for p, f in zip(theta, phi))
    assert torch.equal(reptile.params, model.flatten(theta))

    # evaluation: grid MSE after each step, the old α = 0.01 and the diverging 0.05 (in float32, the
    # dtype evaluate_adaptation samples its tasks in, as the chapter runs it)
    start = maml.params.float()
    for mse_lr in (0.01, 0.05):
        curve = evaluate_adaptation(model, start, tasks, n_tasks=8, k_shot=5, steps=4,
                                    inner_lr=from_mse_lr(mse_lr), grid_points=20, seed=7)
        batch = tasks.sample(8, 5, 0, generator=torch.Generator().manual_seed(7))
        x_grid = tasks.grid(20).expand(8, 20).unsqueeze(-1)
        y_grid = tasks.target(batch.truth, x_grid)
        params = tuple(p.clone() for p in model.unflatten(start))
        rows = [model.loss(params, x_grid, y_grid)]
        for _ in range(4):
            params = _old_step(model, params, batch.x_support, batch.y_support, mse_lr)
            rows.append(model.loss(params, x_grid, y_grid))
        assert np.array_equal(curve.losses, torch.stack(rows).double().numpy())
