"""Code class models: the conditioned reconstructor against a plain MLP, pixel splits and edits, adaptation batched
against one image and one class at a time, the meta-gradient against finite differences, and a toy case where only
code adaptation tells two classes apart."""

import math
from dataclasses import replace

import pytest
import torch

from backprop2lib.models.mlp import MLP
from backprop2lib.recognition.codes import (CodeClassModels, CodeReconstructor, CodeSettings, adapt_codes,
                                            adapt_codes_with_edits, meta_loss_on_points,
                                            edited_coordinates, meta_loss, pixel_split, train_code_models)
from backprop2lib.recognition.images import coordinate_grid

D = torch.float64


def _models(rec, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = CodeClassModels.initial(rec, C, seed=seed, dtype=D, inner_lr=0.5, beta=0.1)
    m.w = m.w + 0.3 * torch.randn(m.w.shape, generator=g, dtype=D)  # the classes differ
    m.mu = 0.2 * torch.randn(m.mu.shape, generator=g, dtype=D)
    m.log_sigma = 0.3 * torch.randn(m.mu.shape, generator=g, dtype=D)
    m.log_alpha = m.log_alpha + 0.2 * torch.randn(m.mu.shape, generator=g, dtype=D)
    return m


@pytest.mark.parametrize("fourier", [0, 3])
def test_reconstruct_is_the_mlp_on_features_and_code(fourier):
    rec = CodeReconstructor(4, hidden=(5, 3), activation="tanh", fourier=fourier)
    m = _models(rec, C=2)
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(2, 3, 4, generator=g, dtype=D)
    coords = torch.rand(7, 2, generator=g, dtype=D) * 2 - 1
    feats = rec.features(coords)
    assert feats.shape == (7, 2 if fourier == 0 else 6)
    out = rec.reconstruct(m.w, codes, feats)
    mlp = MLP((feats.shape[1] + 4, 5, 3, 1), activation="tanh")
    for c in range(2):
        for k in range(3):
            x = torch.cat([feats, codes[c, k].expand(7, 4)], dim=1).unsqueeze(0)
            ref = mlp.forward(mlp.unflatten(m.w[c]), x)[0, :, 0]
            torch.testing.assert_close(out[c, k], ref)
    # per-image coordinates (edits): the same as the shared grid when every image has it
    torch.testing.assert_close(rec.reconstruct(m.w, codes, feats.expand(3, 7, -1)), out)
    with pytest.raises(ValueError, match="codes"):
        rec.reconstruct(m.w, codes[..., :2], feats)
    with pytest.raises(ValueError, match="w"):
        rec.reconstruct(m.w[:1], codes, feats)


def test_fourier_features_are_fixed_by_their_seed():
    coords = coordinate_grid(dtype=D)
    a = CodeReconstructor(2, fourier=4, fourier_seed=3).features(coords)
    assert torch.equal(a, CodeReconstructor(2, fourier=4, fourier_seed=3).features(coords))
    assert not torch.equal(a, CodeReconstructor(2, fourier=4, fourier_seed=4).features(coords))
    torch.testing.assert_close(a[:, :4] ** 2 + a[:, 4:] ** 2, torch.ones(784, 4, dtype=D))
    with pytest.raises(ValueError, match="code_dim"):
        CodeReconstructor(0)
    with pytest.raises(ValueError, match="activation"):
        CodeReconstructor(2, activation="sine")


def test_pixel_split_and_edited_coordinates():
    masks = pixel_split(5, 0.25, seed=2)
    assert masks.shape == (5, 784) and masks.dtype == torch.bool
    assert masks.sum(1).tolist() == [196] * 5
    assert len({tuple(row.nonzero().flatten().tolist()) for row in masks}) == 5  # each image its own split
    assert torch.equal(masks, pixel_split(5, 0.25, seed=2))
    with pytest.raises(ValueError, match="fraction"):
        pixel_split(5, 1.0)
    grid = coordinate_grid(dtype=D)
    torch.testing.assert_close(edited_coordinates(dtype=D), grid)
    # f'(x) = f(R⁻¹(x − t)): the point the edited picture shows at x + t is the original's at 0 for t, and a
    # quarter turn maps the original's (1, 0) to (0, 1)
    shift = (2 / 27, 0.0)
    moved = edited_coordinates(shift, dtype=D)
    torch.testing.assert_close(moved, grid - torch.tensor(shift, dtype=D))
    # a turn by θ: the edited picture at x shows the original at R(−θ) x
    theta = 0.3
    turned = edited_coordinates(angle=theta, dtype=D)
    x, y = grid[:, 0], grid[:, 1]
    expected = torch.stack([x * math.cos(theta) + y * math.sin(theta), -x * math.sin(theta) + y * math.cos(theta)], 1)
    torch.testing.assert_close(turned, expected)


def test_adaptation_batched_equals_one_image_and_one_class_at_a_time():
    rec = CodeReconstructor(3, hidden=(6,), activation="gaussian", fourier=2)
    m = _models(rec, C=3)
    g = torch.Generator().manual_seed(5)
    images = torch.rand(4, 784, generator=g, dtype=D)
    masks = pixel_split(4, 0.5, seed=3)
    noise = torch.randn(4, 2, 3, generator=g, dtype=D)
    fit = adapt_codes(m, images, masks, starts=3, steps=2, refine=3, start_noise=noise, chunk=3)
    assert fit.codes.shape == (4, 3, 3) and fit.held_error.shape == (4, 3)
    for n in range(4):
        for c in range(3):
            one = adapt_codes(m.select(c), images[n:n + 1], masks[n:n + 1], starts=3, steps=2, refine=3,
                              start_noise=noise[n:n + 1])
            torch.testing.assert_close(one.codes[0, 0], fit.codes[n, c])
            torch.testing.assert_close(one.held_error[0, 0], fit.held_error[n, c])
            torch.testing.assert_close(one.penalty[0, 0], fit.penalty[n, c])
    assert torch.equal(fit.predict(), fit.held_error.argmin(1))
    torch.testing.assert_close(fit.scores(2.0), fit.held_error + 2.0 * fit.penalty)
    # adaptation lowers J from the best start on every image and class
    none = adapt_codes(m, images, masks, starts=1, steps=0, refine=0)
    assert bool((fit.objective <= none.objective + 1e-12).all())
    with pytest.raises(ValueError, match="masks"):
        adapt_codes(m, images, masks[:2])
    with pytest.raises(ValueError, match="start_noise"):
        adapt_codes(m, images, masks, starts=3, start_noise=noise[:, :1])


def test_meta_gradient_through_the_inner_steps_matches_finite_differences():
    rec = CodeReconstructor(2, hidden=(4,), activation="tanh")
    m = _models(rec, C=2, seed=7)
    g = torch.Generator().manual_seed(8)
    images = torch.rand(2, 3, 784, generator=g, dtype=D)
    masks = pixel_split(6, 0.5, seed=4).reshape(2, 3, 784)
    params = m.parameters()
    for p in params:
        p.requires_grad_(True)
    grads = torch.autograd.grad(meta_loss(m, images, masks, steps=3), params)
    for p in params:
        p.requires_grad_(False)
    eps = 1e-6
    for p, grad in zip(params, grads):
        for index in [(0, 0), (1, p.shape[1] - 1)]:
            old = p[index].item()
            p[index] = old + eps
            up = meta_loss(m, images, masks, steps=3).item()
            p[index] = old - eps
            down = meta_loss(m, images, masks, steps=3).item()
            p[index] = old
            assert grad[index].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_the_meta_loss_on_gathered_pixels_is_the_masked_one():
    # every image adapts on exactly its masked pixels and is scored on the rest: the two forms agree, gradients too
    rec = CodeReconstructor(2, hidden=(4,), activation="tanh", fourier=2)
    m = _models(rec, C=2, seed=3)
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 784, generator=g, dtype=D)
    masks = pixel_split(6, 0.5, seed=5).reshape(2, 3, 784)
    feats = rec.features(coordinate_grid(dtype=D))
    adapt_idx = torch.stack([torch.stack([row.nonzero().flatten() for row in cls]) for cls in masks])
    query_idx = torch.stack([torch.stack([(~row).nonzero().flatten() for row in cls]) for cls in masks])
    params = m.parameters()
    for p in params:
        p.requires_grad_(True)
    masked = meta_loss(m, images, masks, steps=2)
    gathered = meta_loss_on_points(m, images.gather(-1, adapt_idx), feats[adapt_idx], images.gather(-1, query_idx),
                                   feats[query_idx], steps=2)
    torch.testing.assert_close(masked, gathered)
    for a, b in zip(torch.autograd.grad(masked, params), torch.autograd.grad(gathered, params)):
        torch.testing.assert_close(a, b)
    for p in params:
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="points"):
        CodeSettings(points=500)


def _bars():
    """Two synthetic classes: a vertical and a horizontal bar at a random position, brightness random."""
    grid = coordinate_grid(dtype=D)
    g = torch.Generator().manual_seed(0)

    def draw(axis, n):
        pos = torch.rand(n, 1, generator=g, dtype=D) * 1.2 - 0.6
        level = 0.5 + 0.5 * torch.rand(n, 1, generator=g, dtype=D)
        return level * torch.exp(-((grid[:, axis].unsqueeze(0) - pos) / 0.15) ** 2)

    return draw(0, 60), draw(1, 60), draw(0, 20), draw(1, 20)


def test_code_models_trained_on_two_classes_tell_them_apart_where_full_freedom_fits_anything():
    # meta-trained on vertical and on horizontal bars, a code of 2 (the bar's place and brightness) lets each
    # class model fit its own class: classification is near perfect on new bars
    rec = CodeReconstructor(2, hidden=(12,), activation="gaussian")
    m = CodeClassModels.initial(rec, 2, seed=0, dtype=D, inner_lr=0.5, beta=0.0)
    _, _, vertical, horizontal = _bars()
    trained = train_code_models(rec, [_bars()[0], _bars()[1]],
                                CodeSettings(iterations=150, meta_batch=8, inner_steps=5, meta_lr=1e-2, beta=0.0),
                                progress=False)
    images = torch.cat([vertical, horizontal])
    labels = torch.tensor([0] * 20 + [1] * 20)
    masks = pixel_split(40, 0.5, seed=9)
    fit = adapt_codes(trained, images, masks, starts=6, steps=5, refine=20)
    assert float((fit.predict() == labels).double().mean()) >= 0.95
    # a model free in every parameter fits the other class too: from class 0's network, 300 full-parameter steps
    # on a horizontal bar bring its error below the code-adapted class 0's on the same image
    mlp = MLP((2 + 2, 12, 1), activation="gaussian")
    w = trained.w[0].clone().requires_grad_(True)
    x = torch.cat([coordinate_grid(dtype=D), trained.mu[0].expand(784, 2)], dim=1).unsqueeze(0)
    target = horizontal[0].reshape(1, 784, 1)
    opt = torch.optim.Adam([w], lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        loss = 0.5 * (mlp.forward(mlp.unflatten(w), x) - target).pow(2).mean()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * float(fit.held_error[20, 0])
    assert m.n_classes == 2


def test_a_code_that_can_only_move_a_vertical_bar_provably_cannot_draw_a_horizontal_one():
    # hand-set class models, code of 1: class 0 draws exp(−k²(x − z)²), a vertical bar at x = z; class 1 the same
    # in y. Class 0's picture is constant along y whatever the code, so on any image its error is at least the
    # image's variance within each column (of the pixels scored), a bound no adaptation can beat
    k = 1 / 0.15
    rec = CodeReconstructor(1, hidden=(1,), activation="gaussian")
    m = CodeClassModels.initial(rec, 2, dtype=D, inner_lr=0.01, beta=0.0)
    layout = rec.mlp.unflatten(m.w)  # views: W1 [2, 3, 1] over (x, y, code), b1, W2 [2, 1, 1], b2
    layout[0].zero_()
    layout[0][0, 0, 0], layout[0][0, 2, 0] = k, -k  # class 0: k (x − z)
    layout[0][1, 1, 0], layout[0][1, 2, 0] = k, -k  # class 1: k (y − z)
    layout[1].zero_()
    layout[2].fill_(1.0)
    layout[3].zero_()
    m.log_sigma.fill_(math.log(0.5))
    grid = coordinate_grid(dtype=D)
    positions = torch.tensor([-0.5, -0.1, 0.3, 0.55], dtype=D)
    vertical = torch.exp(-(k * (grid[:, 0].unsqueeze(0) - positions[:, None])) ** 2)
    horizontal = torch.exp(-(k * (grid[:, 1].unsqueeze(0) - positions[:, None])) ** 2)
    images = torch.cat([vertical, horizontal])
    masks = pixel_split(8, 0.5, seed=1)
    fit = adapt_codes(m, images, masks, starts=16, steps=20, refine=200,
                      start_noise=torch.linspace(-1.6, 1.6, 15, dtype=D).expand(8, 15).unsqueeze(-1).contiguous())
    assert fit.predict().tolist() == [0] * 4 + [1] * 4
    assert float(fit.held_error[:4, 0].max()) < 1e-4 and float(fit.held_error[4:, 1].max()) < 1e-4  # its own: exact
    for n in range(4, 8):  # class 0 on a horizontal bar: at least the within-column variance of the scored pixels
        held = ~masks[n]
        columns = torch.arange(784) % 28
        bound = 0.0
        for col in range(28):
            values = images[n][held & (columns == col)]
            bound += 0.5 * float(((values - values.mean()) ** 2).sum())
        bound /= int(held.sum())
        assert float(fit.held_error[n, 0]) >= bound - 1e-12 and bound > 100 * float(fit.held_error[n, 1])


def test_edit_search_finds_the_shift_a_class_model_cannot_make_by_itself():
    # a class model that can only draw a vertical bar at x = 0 (its code has no weight) meets bars moved by 4 and
    # −3 pixels: adapting the code cannot help, searching over shifts of its picture finds the move
    k = 1 / 0.15
    rec = CodeReconstructor(1, hidden=(1,), activation="gaussian")
    m = CodeClassModels.initial(rec, 1, dtype=D, inner_lr=0.01, beta=0.0)
    layout = rec.mlp.unflatten(m.w)
    for p in layout:
        p.zero_()
    layout[0][0, 0, 0] = k
    layout[2].fill_(1.0)
    grid = coordinate_grid(dtype=D)
    pixel = 2 / 27
    images = torch.exp(-(k * (grid[:, 0].unsqueeze(0) - torch.tensor([[4 * pixel], [-3 * pixel]], dtype=D))) ** 2)
    masks = pixel_split(2, 0.5, seed=2)
    edits = [((dx * pixel, 0.0), 0.0) for dx in range(-4, 5)]
    kw = dict(starts=2, steps=1, refine=1)
    plain = adapt_codes(m, images, masks, **kw)
    searched, chosen = adapt_codes_with_edits(m, images, masks, edits, **kw)
    assert chosen[:, 0].tolist() == [8, 1]  # +4 and −3 pixels
    assert float(searched.held_error.max()) < 1e-12 < 0.01 < float(plain.held_error.min())
    # each edit's row is an ordinary adaptation on the edited coordinates
    one = adapt_codes(m, images[:1], masks[:1], features=rec.features(edited_coordinates(*edits[8], dtype=D))[None],
                      **kw)
    torch.testing.assert_close(one.held_error[0], searched.held_error[0])
    with pytest.raises(ValueError, match="edits"):
        adapt_codes_with_edits(m, images, masks, [])


def test_training_rejects_bad_input():
    rec = CodeReconstructor(2)
    with pytest.raises(ValueError, match="classes"):
        train_code_models(rec, [torch.rand(3, 784)])
    with pytest.raises(ValueError, match=r"pixels_by_class\[1\]"):
        train_code_models(rec, [torch.rand(3, 784), torch.rand(3, 10)])
    with pytest.raises(ValueError, match="adapt_fraction"):
        CodeSettings(adapt_fraction=0.0)


def test_moving_each_image_its_own_way_equals_moving_one_at_a_time():
    from backprop2lib.recognition.images import moved_each, moved_images

    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 784, generator=g, dtype=D)
    shifts = torch.tensor([[0.0, 0.0], [2.0, -1.0], [0.5, 1.5], [-3.0, 0.25]], dtype=D)
    angles = torch.tensor([0.0, 10.0, -25.0, 90.0], dtype=D)
    each = moved_each(images, shifts, angles)
    for i in range(4):
        torch.testing.assert_close(each[i:i + 1], moved_images(images[i:i + 1], tuple(shifts[i].tolist()),
                                                               float(angles[i])), atol=1e-12, rtol=0)
    torch.testing.assert_close(each[0], images[0])
    with pytest.raises(ValueError, match=r"shift_pixels, angle_degrees: expected \[4, 2\] and \[4\]"):
        moved_each(images, shifts[:3], angles)


def test_augmented_training_sees_moved_copies_and_is_off_by_default(monkeypatch):
    import backprop2lib.recognition.codes as codes

    seen = []
    real = codes.moved_each
    monkeypatch.setattr(codes, "moved_each", lambda *a: seen.append(a) or real(*a))
    rec = CodeReconstructor(2, hidden=(4,))
    pixels = [torch.rand(3, 784, dtype=D), torch.rand(3, 784, dtype=D)]
    plain = train_code_models(rec, pixels, CodeSettings(iterations=2, meta_batch=2, points=8), progress=False)
    assert seen == []
    moved = train_code_models(rec, pixels, CodeSettings(iterations=2, meta_batch=2, points=8, augment_shift=2.0,
                                                        augment_angle=15.0), progress=False)
    assert len(seen) == 2
    _, shifts, angles = seen[0]
    assert shifts.shape == (4, 2) and shifts.abs().max() <= 2.0 and angles.abs().max() <= 15.0 and angles.std() > 0
    assert not torch.equal(plain.w, moved.w)
    with pytest.raises(ValueError, match="augment_shift"):
        CodeSettings(augment_shift=-1.0)


def test_moved_digits_and_edited_pictures_agree():
    from backprop2lib.recognition.images import moved_images

    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 784, generator=g, dtype=D)
    pictures = images.reshape(3, 28, 28)
    # whole pixels: 2 right, 1 up is a roll of the picture with black coming in
    moved = moved_images(images, (2, 1)).reshape(3, 28, 28)
    expected = torch.zeros_like(pictures)
    expected[:, :-1, 2:] = pictures[:, 1:, :-2]  # row r of the moved image is row r + 1 of the original (up)
    torch.testing.assert_close(moved, expected)
    torch.testing.assert_close(moved_images(images), images)
    quarter = moved_images(images, angle_degrees=90).reshape(3, 28, 28)
    torch.testing.assert_close(quarter, torch.rot90(pictures, k=1, dims=(1, 2)), atol=1e-12, rtol=0)
    # a class model's picture drawn on edited coordinates is the moved picture (whole-pixel shift, on the
    # pixels the shift keeps inside the frame)
    rec = CodeReconstructor(2, hidden=(6,), activation="tanh")
    m = _models(rec, C=1, seed=4)
    code = torch.randn(1, 1, 2, generator=g, dtype=D)
    drawn = rec.reconstruct(m.w, code, rec.features(coordinate_grid(dtype=D)))[0].clamp(0, 1)
    edited = rec.reconstruct(m.w, code, rec.features(edited_coordinates((2 * 2 / 27, 1 * 2 / 27), dtype=D)))[0]
    inside = torch.ones(28, 28, dtype=torch.bool)
    inside[:, :2] = False
    inside[-1, :] = False
    torch.testing.assert_close(moved_images(drawn, (2, 1)).reshape(28, 28)[inside],
                               edited.clamp(0, 1).reshape(28, 28)[inside])


def test_adapting_on_a_draw_of_pixels():
    rec = CodeReconstructor(3, hidden=(6,), activation="gaussian", fourier=2)
    m = _models(rec, C=2)
    g = torch.Generator().manual_seed(6)
    images = torch.rand(3, 784, generator=g, dtype=D)
    masks = pixel_split(3, 0.25, seed=4)
    noise = torch.randn(3, 1, 3, generator=g, dtype=D)
    kw = dict(starts=2, steps=2, refine=2, start_noise=noise)
    every = adapt_codes(m, images, masks, points=196, **kw)  # all 196 adapted pixels, in another order
    torch.testing.assert_close(every.codes, adapt_codes(m, images, masks, **kw).codes)
    few = adapt_codes(m, images, masks, points=20, **kw)
    assert not torch.allclose(few.codes, every.codes)
    # the draw is of adapted pixels only: moving a held-out pixel's value changes nothing in the adaptation
    other = images.clone()
    other[~masks] = 1 - other[~masks]
    torch.testing.assert_close(adapt_codes(m, other, masks, points=20, **kw).codes, few.codes)
    with pytest.raises(ValueError, match="points"):
        adapt_codes(m, images, masks, points=197, **kw)


def test_seeds_trained_together_equal_each_seed_alone():
    rec = CodeReconstructor(2, hidden=(4,), fourier=2)
    g = torch.Generator().manual_seed(5)
    pixels = [torch.rand(3, 784, generator=g, dtype=D) for _ in range(2)]
    settings = CodeSettings(iterations=3, meta_batch=2, points=8, augment_shift=1.0)
    together = train_code_models(rec, pixels, settings, seeds=(4, 7), progress=False)
    for s, seed in enumerate((4, 7)):
        alone = train_code_models(rec, pixels, settings, seeds=(seed,), progress=False)
        for name in ("w", "mu", "log_sigma", "log_alpha"):
            torch.testing.assert_close(getattr(together, name)[2 * s:2 * s + 2], getattr(alone, name),
                                       atol=1e-10, rtol=1e-10)
    default = train_code_models(rec, pixels, replace(settings, seed=4), progress=False)  # seeds=None: settings.seed
    torch.testing.assert_close(default.w, together.w[:2], atol=1e-10, rtol=1e-10)
    images = torch.rand(3, 784, generator=g, dtype=D)
    fit = adapt_codes(together, images, pixel_split(3, 0.5), starts=2, steps=1, refine=1)
    per_seed = fit.predict_per_seed(2)
    assert per_seed.shape == (2, 3)
    torch.testing.assert_close(per_seed[1], fit.held_error[:, 2:].argmin(-1))
    with pytest.raises(ValueError, match="seeds"):
        train_code_models(rec, pixels, settings, seeds=(1, 1))


def test_moved_copies_start_with_the_image_and_stay_within_their_bounds():
    from backprop2lib.recognition.images import moved_copies

    g = torch.Generator().manual_seed(0)
    images = torch.zeros(2, 784, dtype=D)
    images[:, 14 * 28 + 14] = 1.0  # one lit pixel at the centre: its moved position shows the shift
    out = moved_copies(images, 5, max_shift=2.0, max_angle=0.0, generator=g)
    assert out.shape == (10, 784)
    torch.testing.assert_close(out[::5], images)
    rows, cols = [], []
    for picture in out.reshape(10, 28, 28):
        r, c = torch.nonzero(picture > 0, as_tuple=True)
        rows += r.tolist()
        cols += c.tolist()
    assert max(abs(r - 14) for r in rows) <= 3 and max(abs(c - 14) for c in cols) <= 3  # ±2 px, bilinear spread
    assert len(set(zip(rows, cols))) > 4
    with pytest.raises(ValueError, match="copies"):
        moved_copies(images, 0, 1.0, 1.0)


def test_the_budget_curve_validates_every_k_iterations_and_after_the_last():
    rec = CodeReconstructor(2, hidden=(4,))
    pixels = [torch.rand(3, 784, dtype=D), torch.rand(3, 784, dtype=D)]
    seen = []

    def validate(models):
        assert not models.w.requires_grad  # a detached copy: validation cannot leak into meta-training
        seen.append(models.w.clone())
        return float(models.w.abs().sum())

    m = train_code_models(rec, pixels, CodeSettings(iterations=5, meta_batch=2, points=8), validate=validate,
                          validate_every=2, progress=False)
    assert [it for it, _ in m.validation] == [2, 4, 5]
    torch.testing.assert_close(seen[-1], m.w)  # after the last iteration: the returned models
    assert m.validation[-1][1] == pytest.approx(float(m.w.abs().sum()))
    plain = train_code_models(rec, pixels, CodeSettings(iterations=5, meta_batch=2, points=8), progress=False)
    torch.testing.assert_close(plain.w, m.w)  # validating changes nothing
    with pytest.raises(ValueError, match="give both"):
        train_code_models(rec, pixels, CodeSettings(iterations=1, meta_batch=2, points=8), validate=validate)
