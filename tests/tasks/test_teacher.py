import math

import pytest
import torch

from backprop2lib.meta import train_pretrained
from backprop2lib.models.mlp import MLP
from backprop2lib.tasks import TaskBatch, TeacherTasks
from backprop2lib.tasks.teacher import parameter_sensitivity

MODEL = MLP((2, 20, 1), activation="gaussian")  # P = 81


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ teacher tasks
def test_teacher_sample_shapes_dtypes_and_truth():
    tasks = TeacherTasks.sparse_variation(MODEL, seed=0)
    b = tasks.sample(6, 5, 7, generator=gen(0), dtype=torch.float64)
    assert isinstance(b, TaskBatch) and b.n_tasks == 6
    assert b.x_support.shape == (6, 5, 2) and b.y_support.shape == (6, 5, 1)
    assert b.x_query.shape == (6, 7, 2) and b.y_query.shape == (6, 7, 1)
    assert b.truth.shape == (6, MODEL.n_params)
    assert all(t.dtype == torch.float64 for t in (b.x_support, b.y_support, b.x_query, b.y_query, b.truth))
    assert -1 <= float(b.x_all.min()) and float(b.x_all.max()) <= 1
    assert float(b.x_all.min()) < -0.8 and float(b.x_all.max()) > 0.8  # covers the box
    # truth is theta_t, drawn first: the same generator state gives the same parameters
    torch.testing.assert_close(b.truth, tasks.sample_params(6, generator=gen(0), dtype=torch.float64))


def test_teacher_y_is_the_teacher_network_per_task():
    tasks = TeacherTasks.sparse_variation(MODEL, seed=3)
    b = tasks.sample(4, 6, 3, generator=gen(1))
    for t in range(4):  # each task alone, through the shared-weight path of MLP.forward
        expected = MODEL.forward(MODEL.unflatten(b.truth[t]), b.x_all[t : t + 1])
        torch.testing.assert_close(b.y_all[t : t + 1], expected)
    torch.testing.assert_close(tasks.target(b.truth, b.x_all), b.y_all)


def test_teacher_label_noise_has_the_requested_std():
    tasks = TeacherTasks.sparse_variation(MODEL, seed=0, noise_std=0.3)
    b = tasks.sample(200, 50, generator=gen(2))
    residual = b.y_support - tasks.target(b.truth, b.x_support)
    assert abs(float(residual.std()) - 0.3) < 0.01  # 10,000 draws: standard error ~0.002
    assert abs(float(residual.mean())) < 0.01


def test_teacher_same_seed_same_batch_different_seed_differs():
    tasks = TeacherTasks.sparse_variation(MODEL, seed=0, noise_std=0.1)
    a = tasks.sample(3, 4, 4, generator=gen(9))
    b = tasks.sample(3, 4, 4, generator=gen(9))
    c = tasks.sample(3, 4, 4, generator=gen(10))
    for field in ("x_support", "y_support", "x_query", "y_query", "truth"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.x_support, c.x_support) and not torch.equal(a.truth, c.truth)


@pytest.mark.parametrize("family", ["sparse", "narrow", "wide"])
def test_theta_statistics_match_mean_and_scale(family):
    if family == "sparse":
        tasks = TeacherTasks.sparse_variation(MODEL, n_varying=8, spread=0.5, seed=1)
    else:
        tasks = dict(zip(("narrow", "wide"), TeacherTasks.two_spreads(MODEL, seed=1)))[family]
    n = 20_000
    theta = tasks.sample_params(n, generator=gen(4), dtype=torch.float64)
    scale = tasks.scale.double()
    # 5 standard errors: mean's is scale / sqrt(n), a Gaussian std's scale / sqrt(2 n)
    assert bool(((theta.mean(0) - tasks.mean.double()).abs() <= 5 * scale / math.sqrt(n) + 1e-12).all())
    assert bool(((theta.std(0) - scale).abs() <= 5 * scale / math.sqrt(2 * n) + 1e-12).all())
    fixed = ~tasks.varying
    assert torch.equal(theta[:, fixed], tasks.mean.double()[fixed].expand(n, -1))  # never vary, exactly


def test_sparse_variation_has_exactly_n_varying_parameters():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.7, seed=2)
    assert int(tasks.varying.sum()) == 5
    assert torch.equal(tasks.scale[tasks.varying], torch.full((5,), 0.7))
    again = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.7, seed=2)
    other = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.7, seed=3)
    assert torch.equal(again.mean, tasks.mean) and torch.equal(again.scale, tasks.scale)  # seed alone decides
    assert not torch.equal(other.varying, tasks.varying) and not torch.equal(other.mean, tasks.mean)


def test_two_spreads_share_the_mean_and_scale_in_fixed_ratio():
    narrow, wide = TeacherTasks.two_spreads(MODEL, spreads=(0.1, 0.4), seed=5)
    assert (narrow.name, wide.name) == ("narrow", "wide")
    assert torch.equal(narrow.mean, wide.mean)
    torch.testing.assert_close(wide.scale / narrow.scale, torch.full((MODEL.n_params,), 4.0), rtol=1e-6, atol=0)
    r = narrow.scale / 0.1  # the shared profile, in [1/3, 3] and genuinely heterogeneous
    assert float(r.min()) >= 1 / 3 - 1e-6 and float(r.max()) <= 3 + 1e-6
    assert float(r.max() / r.min()) > 4
    assert bool(narrow.varying.all())


def test_ood_complement_moves_the_variation_to_disjoint_parameters():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=8, spread=0.5, seed=0)
    ood = tasks.ood_complement(seed=1)
    assert int(ood.varying.sum()) == 8
    assert not bool((ood.varying & tasks.varying).any())
    assert torch.equal(ood.scale[ood.varying], torch.full((8,), 0.5))
    assert torch.equal(ood.mean, tasks.mean) and ood.model == tasks.model


def test_ood_complement_needs_enough_fixed_parameters():
    small = MLP((1, 2, 1))  # P = 7
    with pytest.raises(ValueError, match=r"scale: .*only \d non-varying"):
        TeacherTasks.sparse_variation(small, n_varying=4, seed=0, among="all").ood_complement()


def test_sparse_variation_varies_only_parameters_that_move_the_output():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=8, spread=0.5, seed=0)
    sens = parameter_sensitivity(MODEL, tasks.mean)
    assert bool((sens[tasks.varying] >= sens.median()).all())
    ood = tasks.ood_complement(seed=1)
    assert bool((sens[ood.varying] >= sens.median()).all())
    # the sensitivity is the RMS over inputs of df/dtheta_i: check one parameter by finite differences
    i = int(tasks.varying.nonzero()[0])
    x = (2 * torch.rand(1, 1024, 2, generator=torch.Generator().manual_seed(0)) - 1)
    w = tasks.mean.double()
    e = torch.zeros_like(w); e[i] = 1e-6
    f = lambda v: MODEL.forward(MODEL.unflatten(v), x.double())[0, :, 0]
    fd = (f(w + e) - f(w - e)) / 2e-6
    assert abs(float(fd.pow(2).mean().sqrt()) - float(sens[i])) < 1e-4 * max(1.0, float(sens[i]))
    with pytest.raises(ValueError, match="among"):
        TeacherTasks.sparse_variation(MODEL, among="some")


def test_with_scale_keeps_the_mean_and_shares_the_random_stream():
    tasks = TeacherTasks.sparse_variation(MODEL, seed=0)
    wider = tasks.with_scale(2 * tasks.scale, "wider")
    assert wider.name == "wider" and torch.equal(wider.mean, tasks.mean)
    a = tasks.sample_params(5, generator=gen(0))
    b = wider.sample_params(5, generator=gen(0))
    torch.testing.assert_close(b - wider.mean, 2 * (a - tasks.mean))


def test_teacher_bad_arguments():
    P = MODEL.n_params
    mean, scale = torch.zeros(P), torch.ones(P)
    with pytest.raises(ValueError, match=rf"mean: expected shape \[{P}\]"):
        TeacherTasks(MODEL, torch.zeros(P + 1), scale)
    with pytest.raises(ValueError, match=rf"scale: expected shape \[{P}\]"):
        TeacherTasks(MODEL, mean, torch.ones(1, P))
    with pytest.raises(ValueError, match="scale: expected values >= 0"):
        TeacherTasks(MODEL, mean, -scale)
    with pytest.raises(ValueError, match="scale: expected finite"):
        TeacherTasks(MODEL, mean, torch.full((P,), float("nan")))
    with pytest.raises(ValueError, match="scale: expected values >= 0"):
        TeacherTasks.sparse_variation(MODEL).with_scale(-scale, "bad")
    with pytest.raises(ValueError, match="n_tasks: expected an int >= 1"):
        TeacherTasks(MODEL, mean, scale).sample(0, 5)
    with pytest.raises(ValueError, match="n_varying"):
        TeacherTasks.sparse_variation(MODEL, n_varying=P + 1)
    with pytest.raises(ValueError, match="spreads"):
        TeacherTasks.two_spreads(MODEL, spreads=(0.4, 0.1))
    with pytest.raises(ValueError, match="x_range"):
        TeacherTasks(MODEL, mean, scale, x_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="theta: expected shape"):
        TeacherTasks(MODEL, mean, scale).target(torch.zeros(2, P - 1), torch.zeros(2, 3, 2))


def test_existing_trainer_fits_a_fixed_teacher():
    # scale 0: every task is the same teacher, so joint training must drive the loss down
    teacher = TeacherTasks.sparse_variation(MODEL, seed=0)
    fixed = teacher.with_scale(torch.zeros(MODEL.n_params), "fixed")
    result = train_pretrained(MODEL, fixed, iterations=150, meta_batch=4, k_shot=10, k_query=10, lr=1e-2,
                              generator=gen(0), progress=False)
    losses = torch.as_tensor(result.losses)
    assert float(losses[-10:].mean()) < 0.3 * float(losses[:10].mean())
