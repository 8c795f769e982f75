import numpy as np
import pytest
import torch

from backprop2lib.meta.backprop2 import ScaleModel
from backprop2lib.meta.scale_gradient import ScaleGradientResult
from backprop2lib.meta.training import TrainResult
from backprop2lib.models import MLP
from backprop2lib.optim.errors import DivergenceError
from backprop2lib.recognition.classifier import (Classification, auroc_per_class, classify, classify_one_at_a_time,
                                                 fit_temperature)
from backprop2lib.recognition.priors import ClassPriors
from backprop2lib.scale import EveRates, InnerLoop, QuadraticRegulariser, QuarticRegulariser, error
from backprop2lib.scale.adapt import adapt

D = torch.float64
MODEL = MLP((2, 6, 1), activation="gaussian")
P = MODEL.n_params
SCALED = ("quadratic", "quartic", "eve")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grid(side: int) -> torch.Tensor:
    """Pixel coordinates [side * side, 2] on [-1, 1], row-major, top row at y = +1."""
    cols = torch.linspace(-1, 1, side, dtype=D)
    rows = torch.linspace(1, -1, side, dtype=D)
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([x, y], -1).reshape(-1, 2)


def _priors(method: str, C: int = 3, seed: int = 0, **kw) -> ClassPriors:
    g = gen(seed)
    mean = torch.randn(C, P, generator=g, dtype=D)
    spread = None if method == "initialisation" else 0.2 + torch.rand(C, P, generator=g, dtype=D)
    return ClassPriors(method, mean, spread, **kw)


def test_meta_sgd_rates_are_the_step_sizes_of_each_rows_class():
    priors = _priors("rates", C=3, seed=2)
    idx = torch.tensor([2, 0, 2, 1])
    start, regulariser, rates = priors.rows(idx)
    assert regulariser is None and torch.equal(rates, priors.spread[idx]) and torch.equal(start, priors.mean[idx])
    assert torch.equal(priors.one_class(1)[2], priors.spread[1])
    # one adaptation step with lr 1 is exactly θ − α ⊙ ∇E, per class
    from backprop2lib.scale.adapt import InnerLoop, adapt
    from backprop2lib.scale.objective import error_and_grad

    x, y = _random_images(4, 5, seed=3)
    x = x.expand(4, -1, -1)  # one grid per image
    out = adapt(MODEL, start, x, y, loop=InnerLoop(max_steps=1, lr=1.0), rates=rates)
    _, g = error_and_grad(MODEL, start, x, y)
    torch.testing.assert_close(out.params, start - rates * g)


# ------------------------------------------------------- per-task regularisers and rates
@pytest.mark.parametrize("method", ["quadratic", "quartic"])
def test_rows_regulariser_equals_one_class_per_row_and_autograd(method):
    priors = _priors(method, C=4, strength=0.03)
    idx = torch.tensor([3, 0, 0, 2, 1, 3, 2, 2, 0])
    w = (priors.mean[idx] + 0.7 * torch.randn(len(idx), P, generator=gen(1), dtype=D)).requires_grad_()
    start, regulariser, rates = priors.rows(idx)
    assert rates is None
    assert isinstance(regulariser, QuadraticRegulariser if method == "quadratic" else QuarticRegulariser)
    assert regulariser.mean.shape == (len(idx), P) and regulariser.strength == 0.03
    torch.testing.assert_close(start, priors.mean[idx], rtol=0, atol=0)
    value, grad = regulariser.value_and_grad(w)
    for t, c in enumerate(idx.tolist()):
        _, original, _ = priors.one_class(c)
        assert isinstance(original, QuadraticRegulariser if method == "quadratic" else QuarticRegulariser)
        v, g = original.value_and_grad(w[t:t + 1].detach())
        torch.testing.assert_close(value[t:t + 1].detach(), v, rtol=1e-14, atol=0)
        torch.testing.assert_close(grad[t:t + 1].detach(), g, rtol=1e-14, atol=1e-15)
    (auto,) = torch.autograd.grad(value.sum(), w)
    torch.testing.assert_close(grad.detach(), auto, rtol=1e-12, atol=1e-14)


def test_rows_eve_rates_equal_one_class_per_row():
    priors = _priors("eve", C=4, decay=0.35)
    idx = torch.tensor([1, 1, 3, 0, 2, 3])
    w = priors.mean[idx] + torch.randn(len(idx), P, generator=gen(2), dtype=D)
    start, regulariser, rates = priors.rows(idx)
    assert regulariser is None and isinstance(rates, EveRates) and rates.mean.shape == (len(idx), P)
    got = rates.rates(w)
    for t, c in enumerate(idx.tolist()):
        _, _, original = priors.one_class(c)
        assert isinstance(original, EveRates) and original.decay == 0.35
        torch.testing.assert_close(got[t], original.rates(w[t]), rtol=1e-14, atol=0)
        # the base rates are per class (mean 1 over the class's parameters), not over the stack
        torch.testing.assert_close(rates.base_rates[t].mean(), torch.tensor(1.0, dtype=D))


def test_initialisation_rows_and_one_class_have_no_regulariser_or_rates():
    priors = _priors("initialisation", C=2)
    start, regulariser, rates = priors.rows(torch.tensor([1, 0, 1]))
    assert regulariser is None and rates is None
    torch.testing.assert_close(start, priors.mean[[1, 0, 1]])
    s, r, q = priors.one_class(1)
    assert r is None and q is None and torch.equal(s, priors.mean[1])


def test_with_changes_a_knob_and_rechecks():
    priors = _priors("quadratic")
    weaker = priors.with_(strength=1e-4)
    assert weaker.strength == 1e-4 and priors.strength == 1e-2 and weaker.mean is priors.mean
    assert priors.names == ("0", "1", "2")
    with pytest.raises(ValueError, match="strength"):
        priors.with_(strength=-1.0)
    with pytest.raises(ValueError, match="decay"):
        priors.with_(decay=float("nan"))


# ------------------------------------------------------------------ from_models
def _flat_params(seed):
    return torch.randn(P, generator=gen(seed), dtype=D)


def test_from_models_reads_each_kind_of_trained_model():
    loop = InnerLoop(max_steps=3, lr=0.1)
    means = [torch.randn(P, generator=gen(10 + c), dtype=D) for c in range(3)]
    spreads = [0.1 + torch.rand(P, generator=gen(20 + c), dtype=D) for c in range(3)]

    quad = [ScaleModel("quadratic", m, QuadraticRegulariser(m, s, 0.05), None, loop) for m, s in zip(means, spreads)]
    priors = ClassPriors.from_models(quad)
    assert priors.method == "quadratic" and priors.strength == 0.05
    torch.testing.assert_close(priors.mean, torch.stack(means))
    torch.testing.assert_close(priors.spread, torch.stack(spreads))
    assert ClassPriors.from_models(quad, strength=1e-3).strength == 1e-3

    quart = [ScaleModel("quartic", m, QuarticRegulariser(m, s, torch.tensor(0.02)), None, loop)
             for m, s in zip(means, spreads)]
    priors = ClassPriors.from_models(quart, names=("a", "b", "c"))
    assert priors.method == "quartic" and priors.strength == pytest.approx(0.02) and priors.names == ("a", "b", "c")
    torch.testing.assert_close(priors.spread, torch.stack(spreads))

    eve = [ScaleModel("eve", m, None, EveRates(m, s, 0.3), loop) for m, s in zip(means, spreads)]
    priors = ClassPriors.from_models(eve)
    assert priors.method == "eve" and priors.decay == 0.3
    assert ClassPriors.from_models(eve, decay=0.0).decay == 0.0

    sg = [ScaleGradientResult("sg", _flat_params(c), np.zeros(1), 1.0, {},
                              log_scale=torch.full((P,), -0.5 - c, dtype=D), strength=0.01, inner_lr=0.1)
          for c in range(3)]
    priors = ClassPriors.from_models(sg)
    assert priors.method == "quadratic"
    torch.testing.assert_close(priors.mean[1], sg[1].params)
    torch.testing.assert_close(priors.spread[2], sg[2].regulariser.variance)

    maml = [TrainResult("maml", _flat_params(c), np.zeros(1), 1.0) for c in range(3)]
    priors = ClassPriors.from_models(maml)
    assert priors.method == "initialisation" and priors.spread is None
    torch.testing.assert_close(priors.mean[2], maml[2].params)


def test_from_models_rejects_mixtures_and_disagreements():
    loop = InnerLoop(max_steps=3, lr=0.1)
    m = torch.randn(P, dtype=D)
    s = torch.ones(P, dtype=D)
    maml = TrainResult("maml", m, np.zeros(1), 1.0)
    quad = ScaleModel("quadratic", m, QuadraticRegulariser(m, s, 0.01), None, loop)
    with pytest.raises(ValueError, match="one method"):
        ClassPriors.from_models([maml, quad])
    with pytest.raises(ValueError, match="number of parameters P"):
        ClassPriors.from_models([maml, torch.randn(P + 1, dtype=D)])
    other = ScaleModel("quadratic", m, QuadraticRegulariser(m, s, 0.02), None, loop)
    with pytest.raises(ValueError, match="strength="):
        ClassPriors.from_models([quad, other])
    assert ClassPriors.from_models([quad, other], strength=0.01).strength == 0.01
    off_centre = ScaleModel("quadratic", m + 1, QuadraticRegulariser(m, s, 0.01), None, loop)
    with pytest.raises(ValueError, match="centred away"):
        ClassPriors.from_models([quad, off_centre])
    with pytest.raises(ValueError, match="models"):
        ClassPriors.from_models([])
    with pytest.raises(ValueError, match=r"models\[1\]"):
        ClassPriors.from_models([maml, "not a model"])


# ------------------------------------------------------------------ validation
def test_class_priors_reject_bad_fields():
    mean = torch.randn(3, P, dtype=D)
    with pytest.raises(ValueError, match="method: unknown"):
        ClassPriors("maml", mean)
    with pytest.raises(ValueError, match=r"mean: expected a tensor \[C, P\]"):
        ClassPriors("initialisation", mean[0])
    bad_mean = mean.clone()
    bad_mean[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"class\(es\) \[1\]"):
        ClassPriors("initialisation", bad_mean)
    with pytest.raises(ValueError, match="needs a tensor"):
        ClassPriors("quadratic", mean)
    with pytest.raises(ValueError, match="must be None"):
        ClassPriors("initialisation", mean, torch.ones_like(mean))
    with pytest.raises(ValueError, match="spread: expected shape"):
        ClassPriors("eve", mean, torch.ones(3, P + 1, dtype=D))
    for value in (0.0, -1.0, float("inf"), float("nan")):
        spread = torch.ones_like(mean)
        spread[2, 5] = value
        with pytest.raises(ValueError, match="class 2, parameter 5"):
            ClassPriors("quartic", mean, spread)
    # Meta-SGD learns α without a sign constraint: negative step sizes are accepted, non-finite ones are not
    spread = torch.ones_like(mean)
    spread[0, 6] = -1.52
    assert float(ClassPriors("rates", mean, spread).spread[0, 6]) == -1.52
    for method in ("quadratic", "eve"):
        with pytest.raises(ValueError, match="positive and finite.*class 0, parameter 6"):
            ClassPriors(method, mean, spread)
    for value in (float("inf"), float("nan")):
        spread[2, 5] = value
        with pytest.raises(ValueError, match=r"step sizes α must be finite.*class 2, parameter 5"):
            ClassPriors("rates", mean, spread)
    with pytest.raises(ValueError, match="names"):
        ClassPriors("initialisation", mean, names=("a", "b"))
    with pytest.raises(ValueError, match="names"):
        ClassPriors("initialisation", mean, names=("a", "a", "b"))
    priors = ClassPriors("quadratic", mean, torch.ones_like(mean))
    with pytest.raises(ValueError, match="class_index"):
        priors.rows(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="LongTensor"):
        priors.rows(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"c: expected a class number"):
        priors.one_class(3)
    _, regulariser, _ = priors.rows(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"w: expected \[T, P\]"):
        regulariser.value_and_grad(torch.zeros(3, P, dtype=D))


# ------------------------------------------------------------ batched == reference
def _random_images(N, side, seed):
    g = gen(seed)
    y = torch.rand(N, side * side, 1, generator=g, dtype=D)
    return _grid(side), y


@pytest.mark.parametrize("method", ["initialisation", *SCALED, "rates"])
@pytest.mark.parametrize("chunk", [2, 3])
def test_batched_classify_equals_one_at_a_time(method, chunk):
    priors = _priors(method, C=3, seed=4, strength=0.05, decay=0.3)
    x, y = _random_images(5, 5, seed=5)
    kw = dict(steps=4, lr=0.2, temperature=0.05)
    fast = classify(MODEL, priors, x, y, chunk=chunk, **kw)
    slow = classify_one_at_a_time(MODEL, priors, x, y, **kw)
    for name in ("losses", "initial_losses", "probabilities"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name), rtol=1e-10, atol=1e-13)
    assert torch.equal(fast.predicted, slow.predicted)
    assert fast.losses.shape == (5, 3) and fast.predicted.dtype == torch.long
    if method in ("quadratic", "quartic"):  # the prior's penalty at the adapted parameters, and the re-scoring
        torch.testing.assert_close(fast.penalties, slow.penalties, rtol=1e-10, atol=1e-13)
        assert bool((fast.penalties > 0).all())
        by_objective = fast.by_objective()
        torch.testing.assert_close(by_objective.losses, fast.losses + fast.penalties)
        assert torch.equal(by_objective.predicted, (fast.losses + fast.penalties).argmin(-1))
    else:
        assert fast.penalties is None and fast.by_objective() is fast
    assert bool((fast.losses < fast.initial_losses).all())  # adaptation did something
    # the initial losses are the errors at each class's start
    starts = priors.mean.repeat(5, 1)
    at_start = error(MODEL, starts, x.expand(15, -1, -1), y.repeat_interleave(3, 0)).reshape(5, 3)
    torch.testing.assert_close(fast.initial_losses, at_start)


@pytest.mark.parametrize("method", ["initialisation", *SCALED, "rates"])
def test_line_search_adaptation_batched_equals_one_at_a_time(method):
    # lr=None: backprop2's warm-started line search per task; the batched adapt takes subsets of
    # the [T, P] regulariser's rows, the reference runs scale.adapt.adapt task by task
    priors = _priors(method, C=3, seed=7, strength=0.05, decay=0.3)
    x, y = _random_images(5, 5, seed=8)
    kw = dict(steps=6, lr=None, temperature=0.05)
    fast = classify(MODEL, priors, x, y, chunk=2, **kw)
    slow = classify_one_at_a_time(MODEL, priors, x, y, **kw)
    for name in ("losses", "initial_losses", "probabilities"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name), rtol=1e-9, atol=1e-12)
    assert bool((fast.losses < fast.initial_losses).all())


def _masks(N, M, k, seed):
    g = gen(seed)
    order = torch.rand(N, M, generator=g).argsort(1)
    return torch.zeros(N, M, dtype=torch.bool).scatter_(1, order[:, :k], True)


@pytest.mark.parametrize("method", ["initialisation", "quadratic", "eve", "rates"])
@pytest.mark.parametrize("per_image_grid", [False, True])
def test_held_out_scoring_batched_equals_one_at_a_time(method, per_image_grid):
    priors = _priors(method, C=3, seed=11, strength=0.05, decay=0.3)
    x, y = _random_images(5, 5, seed=12)
    x = x.expand(5, -1, -1) if per_image_grid else x
    masks = _masks(5, 25, 13, seed=13)
    kw = dict(steps=4, lr=0.2, temperature=0.05, adapt_masks=masks)
    fast = classify(MODEL, priors, x, y, chunk=2, **kw)
    slow = classify_one_at_a_time(MODEL, priors, x, y, **kw)
    for name in ("losses", "initial_losses", "probabilities"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name), rtol=1e-10, atol=1e-13)
    assert torch.equal(fast.predicted, slow.predicted)


def test_held_out_scoring_adapts_on_one_part_and_scores_the_other():
    # obvious construction: adapt on the masked pixels alone (the plain classify on a cut image), then the error of
    # those adapted parameters on the other pixels
    priors = _priors("quadratic", C=2, seed=14, strength=0.05)
    x, y = _random_images(3, 4, seed=15)
    masks = _masks(3, 16, 6, seed=16)
    held = classify(MODEL, priors, x, y, steps=3, lr=0.2, adapt_masks=masks)
    for i in range(3):
        part = classify(MODEL, priors, x[masks[i]], y[i:i + 1, masks[i]], steps=3, lr=0.2)
        for c in range(2):
            start, reg, rates = priors.one_class(c)
            res = adapt(MODEL, start, x[masks[i]][None], y[i:i + 1, masks[i]], loop=InnerLoop(max_steps=3, lr=0.2),
                        regulariser=reg, rates=rates)
            torch.testing.assert_close(res.error_after[0], part.losses[0, c])  # the adaptation sees only its part
            expected = error(MODEL, res.params, x[~masks[i]][None], y[i:i + 1, ~masks[i]])[0]
            torch.testing.assert_close(held.losses[i, c], expected, rtol=1e-10, atol=1e-13)
    # scoring on held-out pixels is not scoring on the adapted ones
    assert not torch.allclose(held.losses, classify(MODEL, priors, x, y, steps=3, lr=0.2).losses)


def test_held_out_masks_are_checked():
    priors = _priors("quadratic", C=2)
    x, y = _random_images(3, 4, seed=17)
    kw = dict(steps=2, lr=0.1)
    uneven = _masks(3, 16, 6, seed=18)
    uneven[0, ~uneven[0]] = torch.tensor([True] + [False] * 9)
    for bad, match in ((torch.ones(3, 16, dtype=torch.bool), "at least one adapted and one held out"),
                       (uneven, "same number of adapted pixels"),
                       (_masks(3, 16, 6, seed=18).float(), "bool tensor"),
                       (_masks(2, 16, 6, seed=18), r"\[3, 16\]")):
        for run in (classify, classify_one_at_a_time):
            with pytest.raises(ValueError, match=f"adapt_masks: .*{match}"):
                run(MODEL, priors, x, y, adapt_masks=bad, **kw)


def test_per_image_coordinates_give_the_same_as_one_grid():
    priors = _priors("quartic", C=2, seed=6)
    x, y = _random_images(4, 4, seed=7)
    one = classify(MODEL, priors, x, y, steps=3, lr=0.1, chunk=3)
    per_image = classify(MODEL, priors, x.expand(4, -1, -1), y, steps=3, lr=0.1, chunk=3)
    torch.testing.assert_close(one.losses, per_image.losses, rtol=1e-12, atol=1e-14)


def test_priors_follow_the_images_dtype():
    priors = _priors("eve", C=2, seed=8)
    x, y = _random_images(3, 4, seed=9)
    out = classify(MODEL, priors, x.float(), y.float(), steps=2, lr=0.1)
    ref = classify(MODEL, priors, x, y, steps=2, lr=0.1)
    assert out.losses.dtype == torch.float32
    torch.testing.assert_close(out.losses, ref.losses.float(), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------- a toy with a known answer
SIDE = 10


def _templates():
    left = torch.zeros(SIDE, SIDE, dtype=D)
    left[:, : SIDE // 2] = 1.0
    top = torch.zeros(SIDE, SIDE, dtype=D)
    top[: SIDE // 2, :] = 1.0
    return [left, top]


def _fit(model: MLP, x: torch.Tensor, image: torch.Tensor, seed: int) -> torch.Tensor:
    """Flat parameters of ``model`` fitted to one image by full-batch Adam."""
    w = (0.5 * model.flatten(model.init(generator=gen(seed), dtype=D, scheme="normal"))).requires_grad_()
    opt = torch.optim.Adam([w], lr=0.03)
    y = image.reshape(1, -1, 1)
    for _ in range(500):
        opt.zero_grad()
        loss = error(model, w[None], x[None], y)[0]
        loss.backward()
        opt.step()
    return w.detach()


def _shift(image: torch.Tensor, dr: int, dc: int) -> torch.Tensor:
    out = torch.roll(image, (dr, dc), (0, 1))
    if dr > 0:
        out[:dr] = 0
    if dr < 0:
        out[dr:] = 0
    if dc > 0:
        out[:, :dc] = 0
    if dc < 0:
        out[:, dc:] = 0
    return out


@pytest.fixture(scope="module")
def toy():
    model = MLP((2, 12, 1), activation="gaussian")
    x = _grid(SIDE)
    templates = _templates()
    starts = torch.stack([_fit(model, x, t, seed=c) for c, t in enumerate(templates)])
    g = gen(30)
    images, labels = [], []
    for c, t in enumerate(templates):
        for dr, dc in ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1), (1, 1)):
            images.append(_shift(t, dr, dc) + 0.1 * torch.randn(SIDE, SIDE, generator=g, dtype=D))
            labels.append(c)
    y = torch.stack(images).reshape(len(images), -1, 1)
    return model, x, y, torch.tensor(labels), starts


@pytest.mark.parametrize("method", ["initialisation", "quadratic", "eve"])
def test_toy_templates_are_recognised(toy, method):
    model, x, y, labels, starts = toy
    spread = None if method == "initialisation" else torch.full_like(starts, 1e-2)
    priors = ClassPriors(method, starts, spread, strength=1e-2, names=("left", "top"))
    # the fits are good: each start reconstructs its own clean template far better than the other's
    own = error(model, starts, x.expand(2, -1, -1), torch.stack(_templates()).reshape(2, -1, 1))
    assert float(own.max()) < 0.02
    out = classify(model, priors, x, y, steps=5, lr=0.1, chunk=5)
    assert out.accuracy(labels) == 1.0
    assert torch.equal(out.predicted, labels)
    torch.testing.assert_close(out.probabilities.sum(-1), torch.ones(len(labels), dtype=D))
    assert bool((out.probabilities[torch.arange(len(labels)), labels] > 0.5).all())
    assert out.confusion(labels).tolist() == [[6, 0], [0, 6]]
    assert out.names == ("left", "top")


# ------------------------------------------------------------- Classification helpers
def test_accuracy_confusion_and_temperature_helpers():
    losses = torch.tensor([[0.1, 0.5, 0.9], [0.3, 0.2, 0.4], [0.6, 0.7, 0.1], [0.2, 0.1, 0.3]], dtype=D)
    out = Classification(losses, losses + 1, losses.argmin(-1), torch.softmax(-losses, -1))
    labels = torch.tensor([0, 1, 2, 0])
    assert out.accuracy(labels) == 0.75
    assert out.accuracy(np.array([0, 1, 2, 1])) == 1.0
    np.testing.assert_array_equal(out.confusion(labels), [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    cold = out.with_temperature(0.01)
    assert cold.temperature == 0.01 and torch.equal(cold.losses, out.losses)
    torch.testing.assert_close(cold.probabilities, torch.softmax(-losses / 0.01, -1))
    with pytest.raises(ValueError, match="labels"):
        out.accuracy(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="labels"):
        out.confusion(torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="temperature"):
        out.with_temperature(0.0)


# ------------------------------------------------------------- calibration and AUROC
def test_fit_temperature_recovers_the_generating_temperature():
    g = gen(40)
    N, C, T_true = 40_000, 5, 0.03
    losses = 0.1 * torch.rand(N, C, generator=g, dtype=D)
    labels = torch.multinomial(torch.softmax(-losses / T_true, -1), 1, generator=g).squeeze(1)
    T = fit_temperature(losses, labels)
    assert T == pytest.approx(T_true, rel=0.1)
    assert fit_temperature(losses.numpy(), labels.numpy()) == pytest.approx(T, rel=1e-6)


def test_fit_temperature_warns_at_the_bound_and_rejects_bad_input():
    losses = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    with pytest.warns(RuntimeWarning, match="search bound"):
        T = fit_temperature(losses, torch.tensor([0, 1, 0]))
    assert T < 1e-3
    with pytest.raises(ValueError, match="same loss"):
        fit_temperature(torch.ones(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_temperature(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"losses: expected \[N, C\]"):
        fit_temperature(torch.ones(4), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(torch.rand(4, 3), torch.tensor([0, 1, 2]))


def test_auroc_per_class_equals_sklearn_and_known_values():
    roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score
    g = gen(50)
    N, C = 300, 4
    labels = torch.randint(C, (N,), generator=g)
    losses = torch.rand(N, C, generator=g, dtype=D) - 0.3 * torch.nn.functional.one_hot(labels, C)
    losses = (losses * 10).round() / 10  # many ties
    got = auroc_per_class(losses, labels)
    want = [roc_auc_score((labels == c).numpy(), -losses[:, c].numpy()) for c in range(C)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert 0.5 < got.min() < 1.0

    separated = 1.0 - torch.nn.functional.one_hot(labels, C).to(D)  # own class: loss 0, others 1
    np.testing.assert_array_equal(auroc_per_class(separated, labels), np.ones(C))
    np.testing.assert_array_equal(auroc_per_class(torch.ones(N, C), labels), np.full(C, 0.5))
    missing = auroc_per_class(torch.rand(4, 3, generator=g), torch.tensor([0, 0, 1, 1]))
    assert np.isnan(missing[2]) and np.isfinite(missing[:2]).all()


# ------------------------------------------------------------------ errors
def test_classify_rejects_bad_arguments():
    priors = _priors("quadratic", C=2)
    x, y = _random_images(3, 4, seed=60)
    kw = dict(steps=2, lr=0.1)
    with pytest.raises(ValueError, match="images_y"):
        classify(MODEL, priors, x, y[..., 0], **kw)
    with pytest.raises(ValueError, match="images_x"):
        classify(MODEL, priors, x[:-1], y, **kw)
    with pytest.raises(ValueError, match="images_x"):
        classify(MODEL, priors, x.expand(2, -1, -1), y, **kw)
    with pytest.raises(ValueError, match="images_x: expected dtype"):
        classify(MODEL, priors, x.float(), y, **kw)
    with pytest.raises(ValueError, match="P = "):
        classify(MLP((2, 7, 1), activation="gaussian"), priors, x, y, **kw)
    bad = y.clone()
    bad[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="images_y: contains NaN"):
        classify(MODEL, priors, x, bad, **kw)
    for name, value in (("steps", -1), ("steps", 2.0), ("lr", 0.0), ("chunk", 0), ("temperature", -1.0)):
        with pytest.raises(ValueError, match=name):
            classify(MODEL, priors, x, y, **{**kw, name: value})


@pytest.mark.parametrize("run", [classify, classify_one_at_a_time])
def test_divergence_names_the_pairs_and_suggests_a_smaller_lr(run):
    priors = _priors("quadratic", C=2, strength=1.0).with_(spread=torch.full((2, P), 1e-3, dtype=D))
    x, y = _random_images(3, 4, seed=70)
    with pytest.raises(DivergenceError, match=r"\(image 0, class 0\).*smaller lr"):
        run(MODEL, priors, x, y, steps=60, lr=1e3, chunk=2)
