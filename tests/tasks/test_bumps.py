import pytest
import torch

from backprop2lib.tasks import GaussianBumpTasks


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_bumps_shapes_formula_and_offsets():
    tasks = GaussianBumpTasks(noise_std=0.0)
    b = tasks.sample(400, 5, 3, generator=gen(0))
    assert b.x_support.shape == (400, 5, 2) and b.y_query.shape == (400, 3, 1) and b.truth.shape == (400, 2)
    assert -1 <= float(b.x_all.min()) and float(b.x_all.max()) <= 1
    expected = 10.0 * torch.exp(-25.0 * ((b.x_all - b.truth[:, None, :]) ** 2).sum(-1, keepdim=True))
    torch.testing.assert_close(b.y_all, expected)
    seen = {tuple(round(v, 6) for v in row) for row in b.truth.tolist()}
    assert seen == {(0.3, 0.5), (0.3, 0.7), (0.9, 0.5), (0.9, 0.7)}  # only these, and all four
    counts = torch.unique(b.truth, dim=0, return_counts=True)[1]
    assert int(counts.min()) > 60  # roughly uniform: 100 expected per offset


def test_bumps_defaults_ood_and_noise():
    assert GaussianBumpTasks.training() == GaussianBumpTasks()
    ood = GaussianBumpTasks.ood().sample(50, 4, generator=gen(0))
    assert torch.equal(ood.truth, torch.full((50, 2), -0.5))
    tasks = GaussianBumpTasks.training()  # noise_std 0.1
    b = tasks.sample(200, 50, generator=gen(1))
    residual = b.y_support - tasks.target(b.truth, b.x_support)
    assert abs(float(residual.std()) - 0.1) < 0.005


def test_bumps_same_seed_same_batch_different_seed_differs():
    a = GaussianBumpTasks().sample(8, 4, 4, generator=gen(3))
    b = GaussianBumpTasks().sample(8, 4, 4, generator=gen(3))
    c = GaussianBumpTasks().sample(8, 4, 4, generator=gen(4))
    assert torch.equal(a.y_all, b.y_all) and torch.equal(a.truth, b.truth)
    assert not torch.equal(a.x_all, c.x_all)


def test_bumps_bad_arguments():
    with pytest.raises(ValueError, match=r"offsets: expected shape \[n >= 1, 2\]"):
        GaussianBumpTasks(offsets=((0.1, 0.2, 0.3),))
    with pytest.raises(ValueError, match="offsets"):
        GaussianBumpTasks(offsets=())
    with pytest.raises(ValueError, match="width: expected a finite number > 0"):
        GaussianBumpTasks(width=0.0)
    with pytest.raises(ValueError, match="noise_std"):
        GaussianBumpTasks(noise_std=-0.1)
    with pytest.raises(ValueError, match="n_tasks: expected an int >= 1"):
        GaussianBumpTasks().sample(0, 5)
    with pytest.raises(ValueError, match="n_query"):
        GaussianBumpTasks().sample(2, 5, -1)
