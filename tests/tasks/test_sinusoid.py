import math

import pytest
import torch

from backprop2lib.tasks import SinusoidTasks


def test_sample_shapes_ranges_and_targets():
    tasks = SinusoidTasks.maml()
    b = tasks.sample(500, 5, 7, generator=torch.Generator().manual_seed(0))
    assert b.x_support.shape == (500, 5, 1) and b.y_query.shape == (500, 7, 1)
    amplitude, phase = b.truth.unbind(1)
    assert 0.1 <= float(amplitude.min()) and float(amplitude.max()) <= 5.0
    assert 0 <= float(phase.min()) and float(phase.max()) <= math.pi
    assert float(phase.max()) > 3.0  # covers the range
    assert -5 <= float(b.x_all.min()) and float(b.x_all.max()) <= 5
    expected = amplitude[:, None, None] * torch.sin(b.x_support - phase[:, None, None])
    torch.testing.assert_close(b.y_support, expected)
    torch.testing.assert_close(tasks.target(b.truth, b.x_all), b.y_all)


def test_reptile_variant_covers_two_pi():
    b = SinusoidTasks.reptile().sample(2000, 1, generator=torch.Generator().manual_seed(0))
    assert float(b.truth[:, 1].max()) > 6.0


def test_same_generator_seed_same_tasks():
    a = SinusoidTasks.maml().sample(3, 4, 4, generator=torch.Generator().manual_seed(9))
    b = SinusoidTasks.maml().sample(3, 4, 4, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a.x_query, b.x_query)


def test_stream_yields_fresh_batches_of_the_right_size():
    stream = SinusoidTasks.maml().stream(25, 10, 10, chunk=3, generator=torch.Generator().manual_seed(0))
    batches = [next(stream) for _ in range(7)]  # crosses two chunk boundaries
    assert all(b.n_tasks == 25 and b.x_support.shape == (25, 10, 1) for b in batches)
    amps = torch.stack([b.truth[:, 0] for b in batches])
    assert len(set(amps[:, 0].tolist())) == 7


def test_indexing_keeps_the_task_axis():
    b = SinusoidTasks.maml().sample(4, 2, 3)
    assert b[1].x_support.shape == (1, 2, 1) and b[1:3].n_tasks == 2
    torch.testing.assert_close(b[-1].truth, b.truth[-1:])


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_tasks: expected an int >= 1"):
        SinusoidTasks.maml().sample(0, 5)
    with pytest.raises(ValueError, match="n_support"):
        SinusoidTasks.maml().sample(2, -1)
    with pytest.raises(ValueError, match="amplitude"):
        SinusoidTasks(amplitude=(5.0, 0.1))
    with pytest.raises(ValueError, match="x_range"):
        SinusoidTasks(x_range=(-5.0, math.inf))
    with pytest.raises(ValueError, match=r"truth: expected \(amplitude, phase\)"):
        SinusoidTasks.target(torch.ones(3), torch.zeros(3, 4, 1))
    with pytest.raises(ValueError, match=r"x: expected shape \[3, N, 1\]"):
        SinusoidTasks.target(torch.ones(3, 2), torch.zeros(2, 4, 1))
