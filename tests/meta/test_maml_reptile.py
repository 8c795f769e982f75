import numpy as np
import pytest
import torch

from backprop2lib.meta import (DivergenceError, evaluate_adaptation, maml_loss, predict_after_adaptation,
                               reptile_update, sgd_adapt, train_maml, train_pretrained, train_reptile)
from backprop2lib.meta.reference import maml_loss_per_task, reptile_update_per_task
from backprop2lib.models import MLP
from backprop2lib.tasks import SinusoidTasks

D = torch.float64


def _setup(activation="relu", T=5, K=6, seed=0):
    model = MLP((1, 12, 12, 1), activation)
    g = torch.Generator().manual_seed(seed)
    theta = [p.requires_grad_(True) for p in model.init(generator=g, dtype=D)]
    batch = SinusoidTasks.maml().sample(T, K, K, generator=g, dtype=D)
    return model, theta, batch


@pytest.mark.parametrize("activation", ["relu", "tanh", "gaussian"])
@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_equals_per_task_double_backward(activation, steps):
    model, theta, batch = _setup(activation)
    ours = torch.autograd.grad(maml_loss(model, theta, batch, inner_steps=steps, inner_lr=0.05), theta)
    ref = torch.autograd.grad(maml_loss_per_task(model, theta, batch, inner_steps=steps, inner_lr=0.05), theta)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_first_order_maml_matches_its_definition_and_differs_from_second_order():
    model, theta, batch = _setup("tanh")
    fo = torch.autograd.grad(maml_loss(model, theta, batch, inner_steps=2, inner_lr=0.1, first_order=True), theta)
    ref = torch.autograd.grad(
        maml_loss_per_task(model, theta, batch, inner_steps=2, inner_lr=0.1, first_order=True), theta)
    for a, b in zip(fo, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # by definition: the mean over tasks of the query gradient at the adapted parameters
    with torch.no_grad():
        phi = sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=2, lr=0.1)
        _, g_query = model.loss_and_grad(phi, batch.x_query, batch.y_query)
    for a, g in zip(fo, g_query):
        torch.testing.assert_close(a, g.mean(0), rtol=1e-9, atol=1e-12)
    so = torch.autograd.grad(maml_loss(model, theta, batch, inner_steps=2, inner_lr=0.1), theta)
    assert max(float((a - b).abs().max()) for a, b in zip(fo, so)) > 1e-4


def test_batched_maml_loss_equals_mean_of_one_task_at_a_time():
    model, theta, batch = _setup("relu", T=4)
    whole = maml_loss(model, theta, batch, inner_steps=2)
    singles = torch.stack([maml_loss(model, theta, batch[t], inner_steps=2) for t in range(4)])
    torch.testing.assert_close(whole, singles.mean())


def test_reptile_update_matches_its_definition():
    model, theta, batch = _setup("tanh")
    theta = tuple(p.detach() for p in theta)
    ours, _ = reptile_update(model, theta, batch.x_all, batch.y_all, inner_steps=3, inner_lr=0.05, outer_lr=0.3)
    ref = reptile_update_per_task(model, theta, batch.x_all, batch.y_all, inner_steps=3, inner_lr=0.05,
                                  outer_lr=0.3)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # outer step 1 is batch Reptile: theta becomes the mean adapted parameters
    full, _ = reptile_update(model, theta, batch.x_all, batch.y_all, inner_steps=3, inner_lr=0.05, outer_lr=1.0)
    phi = sgd_adapt(model, theta, batch.x_all, batch.y_all, steps=3, lr=0.05)
    for a, f in zip(full, phi):
        torch.testing.assert_close(a, f.mean(0))


def test_sgd_adapt_zero_steps_and_bad_arguments():
    model, theta, batch = _setup()
    same = sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=0, lr=0.1)
    assert same[0].shape == (5, 1, 12)
    with pytest.raises(ValueError, match="steps: expected an int >= 0"):
        sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="lr: expected a positive"):
        sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=1, lr=0.0)


def test_training_is_reproducible():
    model, tasks = MLP((1, 20, 20, 1)), SinusoidTasks.maml()
    runs = [train_maml(model, tasks, iterations=50, meta_batch=10, generator=torch.Generator().manual_seed(1),
                       progress=False) for _ in range(2)]
    assert np.array_equal(runs[0].losses, runs[1].losses)
    assert runs[0].method == "MAML" and runs[0].config["iterations"] == 50


@pytest.mark.parametrize("trainer", [train_maml, train_pretrained, train_reptile])
def test_every_trainer_lowers_the_held_out_error_after_one_step(trainer):
    model, tasks = MLP((1, 20, 20, 1)), SinusoidTasks.maml()
    init = model.init(generator=torch.Generator().manual_seed(2))
    r = trainer(model, tasks, iterations=600, init=init, generator=torch.Generator().manual_seed(2), progress=False)
    before = evaluate_adaptation(model, init, tasks, n_tasks=200, steps=1, grid_points=100).at(1).mean
    after = evaluate_adaptation(model, r.params, tasks, n_tasks=200, steps=1, grid_points=100).at(1).mean
    assert after < 0.8 * before


def test_divergence_is_reported_with_where_it_happened():
    model, tasks = MLP((1, 20, 20, 1)), SinusoidTasks.maml()
    with pytest.raises(DivergenceError, match=r"MAML: training loss became (nan|inf) at iteration \d+"):
        train_maml(model, tasks, iterations=20, inner_lr=10.0, inner_steps=10, progress=False)


def test_evaluation_counts_diverged_tasks():
    model = MLP((1, 20, 20, 1))
    theta = model.init(generator=torch.Generator().manual_seed(0))
    tasks = SinusoidTasks.maml()
    curve = evaluate_adaptation(model, theta, tasks, n_tasks=50, steps=3, inner_lr=10.0, grid_points=50)
    assert curve.mse.shape == (4, 50)
    s = curve.at(3)
    assert s.n_diverged > 0 and s.n + s.n_diverged == 50
    assert curve.at(0).n_diverged == 0
    # a stable step size diverges nowhere and lowers the error on average
    ok = evaluate_adaptation(model, theta, tasks, n_tasks=50, steps=3, inner_lr=0.01, grid_points=50)
    assert ok.at(3).n_diverged == 0 and ok.at(3).mean < ok.at(0).mean


def test_evaluation_is_paired_and_batched_equals_one_task_at_a_time():
    model = MLP((1, 10, 1))
    theta = model.init(generator=torch.Generator().manual_seed(0))
    tasks = SinusoidTasks.maml()
    a = evaluate_adaptation(model, theta, tasks, n_tasks=6, steps=2, grid_points=30, seed=5)
    b = evaluate_adaptation(model, theta, tasks, n_tasks=6, steps=2, grid_points=30, seed=5)
    assert np.array_equal(a.mse, b.mse)
    batch = tasks.sample(6, 10, 0, generator=torch.Generator().manual_seed(5))
    x = tasks.grid(30).expand(6, 30).unsqueeze(-1)
    preds = predict_after_adaptation(model, theta, batch, x, steps=[2])
    for t in range(6):
        one = predict_after_adaptation(model, theta, batch[t], x[t : t + 1], steps=[2])
        torch.testing.assert_close(preds[2][t : t + 1], one[2], rtol=1e-5, atol=1e-6)
        target = tasks.target(batch.amplitude[t : t + 1], batch.phase[t : t + 1], x[t : t + 1])
        assert abs(float((one[2] - target).pow(2).mean()) - a.mse[2, t]) < 1e-4
