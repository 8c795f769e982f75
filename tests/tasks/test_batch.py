"""The one batch type, the family base (sampling, streaming) and its helpers.

The reference samplers below are the per-family code as it stood before the families shared
:class:`TaskFamily`, written out call by call: the shared sampler must make exactly their draws.
"""

import dataclasses
import math

import pytest
import torch

from backprop2lib.models.mlp import MLP
from backprop2lib.tasks import GaussianBumpTasks, SinusoidTasks, TaskBatch, TaskFamily, TeacherTasks
from backprop2lib.tasks.batch import add_noise, check_counts, check_number, check_range, uniform_inputs

MODEL = MLP((2, 20, 1), activation="gaussian")  # P = 81
FAMILIES = {
    "sinusoid": SinusoidTasks.maml(),
    "bumps": GaussianBumpTasks(),
    "teacher": TeacherTasks.sparse_variation(MODEL, seed=0, noise_std=0.2),
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------ slow references
def reference_sinusoid(tasks, n_tasks, n_support, n_query, g, dtype):
    """The old SinusoidTasks.sample: one rand call, amplitude, phase, then the points per task."""
    u = torch.rand(n_tasks, 2 + n_support + n_query, generator=g, dtype=dtype)
    amplitude = tasks.amplitude[0] + (tasks.amplitude[1] - tasks.amplitude[0]) * u[:, 0]
    phase = tasks.phase[0] + (tasks.phase[1] - tasks.phase[0]) * u[:, 1]
    x = (tasks.x_range[0] + (tasks.x_range[1] - tasks.x_range[0]) * u[:, 2:]).unsqueeze(-1)
    y = amplitude[:, None, None] * torch.sin(x - phase[:, None, None])
    return x, y, torch.stack([amplitude, phase], dim=1)


def reference_bumps(tasks, n_tasks, n_support, n_query, g, dtype):
    """The old GaussianBumpTasks.sample: offsets, inputs, then the noise."""
    which = torch.randint(len(tasks.offsets), (n_tasks,), generator=g)
    offsets = torch.tensor(tasks.offsets, dtype=dtype)[which]
    u = torch.rand(n_tasks, n_support + n_query, 2, generator=g, dtype=dtype)
    x = tasks.x_range[0] + (tasks.x_range[1] - tasks.x_range[0]) * u
    z = tasks.width * (x - offsets[:, None, :])
    y = tasks.height * torch.exp(-z.pow(2).sum(dim=-1, keepdim=True))
    if tasks.noise_std > 0:
        y = y + tasks.noise_std * torch.randn(y.shape, generator=g, dtype=dtype)
    return x, y, offsets


def reference_teacher(tasks, n_tasks, n_support, n_query, g, dtype):
    """The old TeacherTasks.sample: parameters, inputs, then the noise."""
    eps = torch.randn(n_tasks, tasks.model.n_params, generator=g, dtype=dtype)
    theta = tasks.mean.to(dtype) + tasks.scale.to(dtype) * eps
    u = torch.rand(n_tasks, n_support + n_query, tasks.model.sizes[0], generator=g, dtype=dtype)
    x = tasks.x_range[0] + (tasks.x_range[1] - tasks.x_range[0]) * u
    y = tasks.model.forward(tasks.model.unflatten(theta), x)
    if tasks.noise_std > 0:
        y = y + tasks.noise_std * torch.randn(y.shape, generator=g, dtype=dtype)
    return x, y, theta


REFERENCES = {"sinusoid": reference_sinusoid, "bumps": reference_bumps, "teacher": reference_teacher}


def reference_batch(name, n_tasks, n_support, n_query, g, dtype=torch.float32):
    x, y, truth = REFERENCES[name](FAMILIES[name], n_tasks, n_support, n_query, g, dtype)
    return x[:, :n_support], y[:, :n_support], x[:, n_support:], y[:, n_support:], truth


def assert_same_batch(batch: TaskBatch, fields) -> None:
    for name, got, want in zip(("x_support", "y_support", "x_query", "y_query", "truth"), batch._fields(), fields):
        assert got.dtype == want.dtype and torch.equal(got, want), name


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes", [(7, 5, 3), (1, 1, 0), (4, 0, 6)])
def test_sample_makes_the_old_per_family_draws(name, dtype, sizes):
    g_new, g_old = gen(11), gen(11)
    for _ in range(2):  # twice from one generator: the generator is left where the old code left it
        batch = FAMILIES[name].sample(*sizes, generator=g_new, dtype=dtype)
        assert_same_batch(batch, reference_batch(name, *sizes, g_old, dtype))


@pytest.mark.parametrize("name", ["bumps", "teacher"])
def test_noise_free_families_draw_no_noise(name):
    quiet = dataclasses.replace(FAMILIES[name], noise_std=0.0)
    g_new, g_old = gen(2), gen(2)
    batch = quiet.sample(5, 3, 2, generator=g_new)
    x, y, truth = REFERENCES[name](quiet, 5, 3, 2, g_old, torch.float32)
    assert torch.equal(batch.y_all, y) and torch.equal(batch.truth, truth)
    assert torch.equal(g_new.get_state(), g_old.get_state())  # no draw for a noise level of 0


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_stream_makes_the_old_draws(name):
    n_tasks, n_support, n_query, chunk = 4, 3, 2, 3

    def reference_stream(g):  # the old stream: one big sample per chunk, cut in order
        while True:
            fields = reference_batch(name, n_tasks * chunk, n_support, n_query, g)
            for i in range(chunk):
                yield tuple(t[i * n_tasks:(i + 1) * n_tasks] for t in fields)

    stream = FAMILIES[name].stream(n_tasks, n_support, n_query, chunk=chunk, generator=gen(5))
    old = reference_stream(gen(5))
    for _ in range(2 * chunk + 1):  # crosses two chunk boundaries
        assert_same_batch(next(stream), next(old))


# ------------------------------------------------------------------ the batch
def test_indexing_and_concatenation():
    b = GaussianBumpTasks().sample(5, 2, 3, generator=gen(0))
    assert b[1].n_tasks == 1 and b[1].x_support.shape == (1, 2, 2)
    assert torch.equal(b[-1].truth, b.truth[-1:]) and torch.equal(b[-2].x_query, b.x_query[3:4])
    assert b[1:4].n_tasks == 3 and b[torch.tensor(2)].n_tasks == 1
    picked = b[torch.tensor([4, 0])]
    assert torch.equal(picked.y_query, b.y_query[[4, 0]]) and torch.equal(picked.truth, b.truth[[4, 0]])
    assert torch.equal(b.x_all, torch.cat([b.x_support, b.x_query], 1))
    assert torch.equal(b.y_all[:, 2:], b.y_query) and b.y_all.shape == (5, 5, 1)
    with pytest.raises(IndexError):
        b[5]
    with pytest.raises(IndexError):
        b[-6]
    assert b.to("cpu").x_support.device.type == "cpu"


def test_sinusoid_truth_is_amplitude_then_phase_and_indexes_with_the_tasks():
    b = SinusoidTasks.maml().sample(4, 2, 3, generator=gen(0))
    assert b.truth.shape == (4, 2)
    torch.testing.assert_close(b[-1].truth, b.truth[-1:])
    torch.testing.assert_close(SinusoidTasks.target(b[2].truth, b[2].x_all), b[2].y_all)


def test_batch_rejects_inconsistent_shapes():
    x, y = torch.zeros(3, 4, 2), torch.zeros(3, 4, 1)
    with pytest.raises(ValueError, match="truth: expected a leading task axis"):
        TaskBatch(x, y, x, y, torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"x_support: expected shape \[2, N, width\]"):
        TaskBatch(x, y, x, y, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="y_support"):
        TaskBatch(x, torch.zeros(3, 4), x, y, torch.zeros(3))
    with pytest.raises(ValueError, match="y_query: has 5 points per task but x_query has 4"):
        TaskBatch(x, y, x, torch.zeros(3, 5, 1), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="x_query: input width 3 differs from x_support's 2"):
        TaskBatch(x, y, torch.zeros(3, 4, 3), y, torch.zeros(3))
    with pytest.raises(ValueError, match="y_query: output width 2 differs from y_support's 1"):
        TaskBatch(x, y, x, torch.zeros(3, 4, 2), torch.zeros(3))
    TaskBatch(x, y, x[:, :0], y[:, :0], torch.zeros(3))  # no query points is a batch


# ------------------------------------------------------------ the family base
class Steps(TaskFamily):
    """A minimal family: task t is y = t + x at x = 0, 1, 2, ... (no randomness)."""

    def _draw(self, n_tasks, n_points, *, generator, gen_device, device, dtype):
        x = torch.arange(n_points, dtype=dtype, device=device).expand(n_tasks, n_points).unsqueeze(-1)
        truth = torch.arange(n_tasks, dtype=dtype, device=device)
        return x, x + truth[:, None, None], truth


def test_base_cuts_support_then_query_and_checks_sizes():
    b = Steps().sample(3, 2, 4, dtype=torch.float64)
    assert b.x_support[0, :, 0].tolist() == [0.0, 1.0] and b.x_query[0, :, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert b.y_query[2, :, 0].tolist() == [4.0, 5.0, 6.0, 7.0] and b.truth.dtype == torch.float64
    for args, match in (((0, 1), "n_tasks: expected an int >= 1"), ((2, -1), "n_support"), ((2, 1, -1), "n_query"),
                        ((2.0, 1), "n_tasks"), ((True, 1), "n_tasks")):
        with pytest.raises(ValueError, match=match):
            Steps().sample(*args)
    with pytest.raises(TypeError):  # a family must say how it draws
        TaskFamily()


def test_stream_checks_its_arguments_at_the_call():
    for kwargs, match in (({"chunk": 0}, "chunk"), ({"chunk": 2.0}, "chunk"), ({"n_tasks": 0}, "n_tasks")):
        args = {"n_tasks": 2, "n_support": 1, **kwargs}
        with pytest.raises(ValueError, match=match):
            Steps().stream(args.pop("n_tasks"), args.pop("n_support"), **args)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_stream_yields_fresh_batches_of_the_right_size(name):
    family = FAMILIES[name]
    stream = family.stream(25, 10, 10, chunk=3, generator=gen(0))
    batches = [next(stream) for _ in range(7)]  # crosses two chunk boundaries
    width = 1 if name == "sinusoid" else 2
    assert all(b.n_tasks == 25 and b.x_support.shape == (25, 10, width) and b.y_query.shape == (25, 10, 1)
               for b in batches)
    assert len({tuple(b.x_support[0, 0].tolist()) for b in batches}) == 7
    big = family.sample(75, 10, 10, generator=gen(0))  # the first chunk is one big sample, cut in order
    assert torch.equal(batches[1].y_query, big.y_query[25:50])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_cpu_generator_samples_the_same_tasks_on_cuda(name):
    # random numbers are drawn on the generator's device, then moved: same tasks on either device
    family = FAMILIES[name]
    on_cpu = family.sample(6, 4, 3, generator=gen(0))
    on_gpu = family.sample(6, 4, 3, generator=gen(0), device="cuda")
    assert on_gpu.y_query.device.type == "cuda" and on_gpu.truth.device.type == "cuda"
    torch.testing.assert_close(on_gpu.to("cpu").truth, on_cpu.truth)
    torch.testing.assert_close(on_gpu.to("cpu").y_all, on_cpu.y_all)


# --------------------------------------------------------------------- helpers
def test_check_helpers_name_the_argument():
    assert check_range("r", (0, 2)) == (0.0, 2.0)
    for bad in ((1.0, 1.0), (0.0, math.inf), (1,), "ab"):
        with pytest.raises(ValueError, match="r: expected"):
            check_range("r", bad)
    assert check_number("s", 0) == 0.0 and check_number("s", 2, positive=True) == 2.0
    for bad, positive in ((-1.0, False), (0.0, True), (math.nan, False), (True, False), ("1", False)):
        with pytest.raises(ValueError, match="s: expected a finite number"):
            check_number("s", bad, positive=positive)
    check_counts(1, 0, 0)
    with pytest.raises(ValueError, match="n_support: expected an int >= 0"):
        check_counts(1, -1, 0)


def test_uniform_inputs_and_noise():
    x = uniform_inputs((-2.0, 3.0), (400, 50), generator=gen(0), gen_device=torch.device("cpu"), device="cpu",
                       dtype=torch.float64)
    assert x.shape == (400, 50) and -2 <= float(x.min()) and float(x.max()) <= 3
    assert abs(float(x.mean()) - 0.5) < 0.05  # 20,000 draws, std 1.44: standard error 0.01
    y = torch.zeros(200, 100, dtype=torch.float64)
    noisy = add_noise(y, 0.5, generator=gen(1), gen_device=torch.device("cpu"))
    assert abs(float(noisy.std()) - 0.5) < 0.02 and noisy.dtype == torch.float64
    assert add_noise(y, 0.0, generator=gen(1), gen_device=torch.device("cpu")) is y
