import math

import pytest
import torch

from backprop2lib.continual import FISHER_KINDS, diagonal_fisher, fisher_overlap, layer_slices
from backprop2lib.models.mlp import MLP

D = torch.float64
SIZES = (6, 4, 3, 5)
R, N = 2, 7


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _problem(model: MLP, seed: int = 0):
    g = gen(seed)
    flat = torch.randn(R, model.n_params, generator=g, dtype=D)
    x = torch.randn(R, N, model.sizes[0], generator=g, dtype=D)
    y = torch.randint(model.sizes[-1], (R, N), generator=g)
    return flat, x, y


def _reference_fisher(model: MLP, flat, x, y, kind):
    """One example at a time: autograd gradient of log p(c | x) w.r.t. the flat parameters, squared."""
    n_classes = model.sizes[-1]
    out = torch.zeros_like(flat)
    for r in range(flat.shape[0]):
        for i in range(x.shape[1]):
            theta = flat[r].clone().requires_grad_(True)
            logits = model.forward(model.unflatten(theta), x[r:r + 1, i:i + 1])[0, 0]
            log_p = torch.log_softmax(logits, -1)
            if kind == "empirical":
                (g,) = torch.autograd.grad(log_p[y[r, i]], theta)
                out[r] += g.pow(2)
            else:
                p = log_p.exp().detach()
                for c in range(n_classes):
                    (g,) = torch.autograd.grad(log_p[c], theta, retain_graph=True)
                    out[r] += p[c] * g.pow(2)
    return out / x.shape[1]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("kind", FISHER_KINDS)
def test_diagonal_fisher_matches_per_example_autograd(activation, kind):
    model = MLP(SIZES, activation)
    flat, x, y = _problem(model, seed=1)
    got = diagonal_fisher(model, flat, x, y, kind=kind)
    want = _reference_fisher(model, flat, x, y, kind)
    assert got.shape == (R, model.n_params) and got.dtype == D
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert bool((got >= 0).all())


def test_true_and_empirical_fisher_differ_and_true_ignores_labels():
    model = MLP(SIZES, "tanh")
    flat, x, y = _problem(model, seed=2)
    true = diagonal_fisher(model, flat, x, kind="true")
    torch.testing.assert_close(diagonal_fisher(model, flat, x, y, kind="true"), true, rtol=0, atol=0)
    empirical = diagonal_fisher(model, flat, x, y, kind="empirical")
    assert (true - empirical).abs().max() > 1e-3  # different quantities away from a minimum


@pytest.mark.parametrize("kind", FISHER_KINDS)
def test_chunk_does_not_change_the_result(kind):
    model = MLP(SIZES, "relu")
    flat, x, y = _problem(model, seed=3)
    whole = diagonal_fisher(model, flat, x, y, kind=kind, chunk=256)
    for chunk in (1, 3, N):
        torch.testing.assert_close(diagonal_fisher(model, flat, x, y, kind=kind, chunk=chunk), whole,
                                   rtol=1e-12, atol=1e-14)


def test_rows_together_equal_rows_alone():
    model = MLP(SIZES, "tanh")
    flat, x, y = _problem(model, seed=4)
    together = diagonal_fisher(model, flat, x, y, kind="true")
    for r in range(R):
        alone = diagonal_fisher(model, flat[r:r + 1], x[r:r + 1], y[r:r + 1], kind="true")
        torch.testing.assert_close(alone[0], together[r], rtol=1e-12, atol=1e-14)


def test_diagonal_fisher_rejects_bad_input():
    model = MLP(SIZES, "relu")
    flat, x, y = _problem(model)
    with pytest.raises(ValueError, match="y: the empirical Fisher needs"):
        diagonal_fisher(model, flat, x, kind="empirical")
    with pytest.raises(ValueError, match="kind"):
        diagonal_fisher(model, flat, x, y, kind="exact")
    with pytest.raises(ValueError, match="params"):
        diagonal_fisher(model, flat[:, :-1], x, y)
    with pytest.raises(ValueError, match="params"):
        diagonal_fisher(model, flat[0], x, y)
    with pytest.raises(ValueError, match="x: expected"):
        diagonal_fisher(model, flat, x[..., :-1], y)  # wrong input width
    with pytest.raises(ValueError, match="x: expected"):
        diagonal_fisher(model, flat, x[:1], y[:1])  # R disagrees with the parameters
    with pytest.raises(ValueError, match="y: expected"):
        diagonal_fisher(model, flat, x, y[:, :-1], kind="empirical")


@pytest.mark.parametrize("chunk", [0, -1])
def test_diagonal_fisher_rejects_non_positive_chunk(chunk):
    model = MLP(SIZES, "relu")
    flat, x, y = _problem(model)
    with pytest.raises(ValueError, match="chunk"):
        diagonal_fisher(model, flat, x, y, chunk=chunk)


# ----------------------------------------------------------------------------------- overlap

def _matrix_overlap(a, b):
    """Kirkpatrick et al.'s 1 − ½ tr(A + B − 2 (A^½ B A^½)^½) with the trace-normalised diagonal matrices,
    computed with dense matrices and an eigendecomposition for the square roots."""
    A, B = torch.diag(a / a.sum()), torch.diag(b / b.sum())

    def sqrtm(m):
        vals, vecs = torch.linalg.eigh(m)
        return vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T

    root_a = sqrtm(A)
    return 1 - 0.5 * torch.trace(A + B - 2 * sqrtm(root_a @ B @ root_a))


def test_fisher_overlap_matches_the_matrix_formula():
    g = gen(5)
    fa = torch.rand(3, 9, generator=g, dtype=D)
    fb = torch.rand(3, 9, generator=g, dtype=D)
    fb[1, :4] = 0.0  # partly disjoint support
    got = fisher_overlap(fa, fb)
    assert got.shape == (3,)
    for r in range(3):
        torch.testing.assert_close(got[r], _matrix_overlap(fa[r], fb[r]), rtol=1e-10, atol=1e-12)
        a, b = fa[r] / fa[r].sum(), fb[r] / fb[r].sum()
        torch.testing.assert_close(got[r], 1 - 0.5 * ((a.sqrt() - b.sqrt()) ** 2).sum(), rtol=1e-12, atol=1e-12)
    assert bool(((got > 0) & (got < 1)).all())
    torch.testing.assert_close(fisher_overlap(fb, fa), got, rtol=1e-14, atol=0)  # symmetric


def test_fisher_overlap_extremes():
    g = gen(6)
    fa = torch.rand(2, 3, 8, generator=g, dtype=D) + 0.01
    torch.testing.assert_close(fisher_overlap(fa, 3.7 * fa), torch.ones(2, 3, dtype=D))
    disjoint_a = torch.tensor([1.0, 2.0, 0.0, 0.0], dtype=D)
    disjoint_b = torch.tensor([0.0, 0.0, 5.0, 0.5], dtype=D)
    assert float(fisher_overlap(disjoint_a, disjoint_b)) == 0.0


def test_fisher_overlap_rejects_bad_input():
    a = torch.rand(5, dtype=D)
    with pytest.raises(ValueError, match="fa, fb: expected equal shapes"):
        fisher_overlap(a, torch.rand(6, dtype=D))
    with pytest.raises(ValueError, match="never negative"):
        fisher_overlap(a, -a)
    with pytest.raises(ValueError, match="zero everywhere"):
        fisher_overlap(a, torch.zeros(5, dtype=D))


# ------------------------------------------------------------------------------ layer slices

def test_layer_slices_cover_the_flat_vector_in_order():
    model = MLP((6, 4, 3, 5), "relu")
    slices = layer_slices(model)
    assert [name for name, _ in slices] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    start = 0
    for (_, where), shape in zip(slices, model.shapes):
        assert where.start == start and where.stop - where.start == math.prod(shape)
        start = where.stop
    assert start == model.n_params
    flat = torch.randn(model.n_params, generator=gen(7), dtype=D)
    for (_, where), part, shape in zip(slices, model.unflatten(flat), model.shapes):
        assert torch.equal(flat[where].reshape(shape), part)
