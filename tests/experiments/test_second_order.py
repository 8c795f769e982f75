"""Chapter 4's driver (experiments/second_order.py): its problems (the MNIST problem's draws and losses,
written out as they were before it drew through data.mnist.Minibatches, and its use through the one
loop), its settings per profile, each section at a tiny size against a direct call, a written-out
reference or a known property, run(), and the claim checks."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from backprop2lib import methods
from backprop2lib.data.mnist import bundled_split
from backprop2lib.experiments import second_order as ch4
from backprop2lib.experiments.second_order import (Comparison, Cost, HessianCheck, Inflection, Results, Settings,
                                                   Trajectories, final_summary, mnist_problem, plane_wave_problem)
from backprop2lib.optim import SGD, Adam, Curve, run, tune_lr
from backprop2lib.profiles import Profile
from backprop2lib.second_order import BlockNewton, GradientDescentLineSearch
from backprop2lib.second_order.hessian import loss_and_grad, mean_loss
from backprop2lib.second_order.optimisers import MLPProblem
from backprop2lib.second_order.toy import ToyMethod, double_well, saddle_well

_LS = Settings.for_profile("smoke").line_search

# every section at a size that runs in about a second
TINY = dataclasses.replace(
    Settings.for_profile("smoke"),
    hessian_activations=("tanh", "relu"), hessian_networks=(("squared", (2, 4, 1)), ("cross_entropy", (3, 4, 3))),
    hessian_block_size=3, hessian_points=6,
    concave_grids=(("double well", (-1.2,), (1.2,), 41), ("saddle well", (-1.5, -1.5), (1.5, 1.5), 9),
                   ("Himmelblau", (-5.0, -5.0), (5.0, 5.0), 9)),
    toy_steps=4,
    wave_models=2, wave_steps=4, wave_points=20, wave_hidden=4, wave_record_every=2,
    gd_grid_wave=(0.03, 0.3), adam_grid=(0.01, 0.1),
    wave_second_order=(BlockNewton(3), BlockNewton(7, line_search=_LS), BlockNewton(7, rule="newton", line_search=_LS),
                       BlockNewton(None, rule="saddle_free", damping=1e-3, line_search=_LS)),
    mnist_models=2, mnist_steps=3, mnist_record_every=2, mnist_hidden=3, mnist_batch_size=8, mnist_eval_images=20,
    gd_grid_mnist=(0.3, 3.0), mnist_second_order=(BlockNewton(7), BlockNewton(7, line_search=_LS)),
    cost_inputs=(4, 8), cost_inputs_full=(4, 6), cost_hidden=3, cost_points=8, cost_repeats=1, cost_rounds=1,
    cost_repeats_full=1, cost_rounds_full=1,
    escape_steps=4, tuning_models_wave=2, tuning_models_mnist=1,
    newton_grids_wave=(ch4.NewtonGrid(BlockNewton(7), (0.1, 0.3), (0.01, 1.0)),
                       ch4.NewtonGrid(BlockNewton(7, line_search=_LS), (0.1, 0.3), (1.0, 10.0))),
    newton_grids_mnist=(ch4.NewtonGrid(BlockNewton(7), (1.0, 3.0), (0.01, 1.0)),
                        ch4.NewtonGrid(BlockNewton(7, line_search=_LS), (0.1, 0.3), (1.0, 10.0))),
)

CLAIMS = [
    "Block Hessians equal the full Hessian's diagonal blocks (4 activations x 2 losses, float64, error < 1e-10)",
    "With backprop2's guard, the |λ| step lowers f at every concave grid point where guarded Newton raises it "
    "(all three test functions)",
    "Without the guard, the |λ| step raises f at some concave points (near inflection points, as derived)",
    "The cubic model predicts whether the unguarded |λ| step lowers f at >= 90% of the double well's concave points",
    "From every concave grid point (saddle well, Himmelblau): guarded plain Newton ends at a saddle or maximum "
    "from at least a quarter of the starts, the |λ| rule from none",
    "From every concave grid point: the |λ| rule ends lower than guarded plain Newton (paired over the starts)",
    "Cost per block-Newton step (b = 7) grows at most linearly in P (fitted exponent < 1.3)",
    "The same recursion with one block per tensor costs more than 10x a b = 7 step at the largest P where both ran, "
    "and grows faster than P squared (exponent > 2)",
    "Plane wave: with the line search, block Newton (b = 7) ends lower than GD with the same line search",
    "Plane wave: with the line search, plain-Newton and |λ| blocks (b = 7) end at the same loss (paired 95% interval "
    "of the difference within ±20%)",
    "Plane wave: tuned without the line search, block Newton picks the smallest max_step of its grid (the end "
    "where the guard's gradient step dominates) and ends at tuned GD's loss (within ±20%)",
    "MNIST: tuned Adam ends lower than every block-Newton variant, tuned ones included, after the same number of steps",
    "MNIST: at the wall time tuned Adam needs for all its steps, every block-Newton variant is still higher",
    "The tuned learning rates of GD and Adam are inside their grids on both problems",
]


@pytest.fixture(scope="module")
def results() -> Results:
    return ch4.run(TINY)


# ------------------------------------------------------------------------------------ the problems

def test_mnist_problem_makes_the_old_draws_initialisations_and_losses():
    problem = mnist_problem(n_models=3, hidden=6, batch_size=16, n_eval=50, seed=2)
    assert problem.name == "MNIST 784-6-10" and problem.model.sizes == (784, 6, 10)
    split = bundled_split(seed=0)
    x_train, y_train = split.train.pixels(), split.train.labels
    x_test, y_test = split.test.pixels(), split.test.labels
    for step in (0, 1, 7):
        g = torch.Generator().manual_seed(2 * 1_000_003 + step)
        idx = torch.randint(len(y_train), (16,), generator=g)
        x, y = problem.batches(step)
        assert torch.equal(x, x_train[idx].expand(3, -1, -1)) and torch.equal(y, y_train[idx].expand(3, -1))
    g = torch.Generator().manual_seed(5)
    w = problem.model.flatten(problem.model.init(3, scheme="pytorch", generator=g))
    assert torch.equal(problem.init(5), w)
    eval_batch = (x_train[:50].expand(3, -1, -1), y_train[:50].expand(3, -1))
    assert torch.equal(problem.evaluate(w), mean_loss(problem.model, w, *eval_batch, loss="cross_entropy"))
    out = problem.model.forward(problem.model.unflatten(w), x_test.expand(3, -1, -1))
    assert torch.equal(problem.accuracy(w), (out.argmax(-1) == y_test).to(torch.float64).mean(1))


def test_seeded_mnist_problem_runs_in_the_one_loop_like_a_hand_written_loop():
    problem = mnist_problem(n_models=2, hidden=5, batch_size=8, n_eval=20)
    seeded = problem.seeded(1)
    assert isinstance(seeded, MLPProblem) and torch.equal(seeded.init(), problem.init(1))
    curve = run(SGD(0.5), seeded, 3)
    w = problem.init(1)
    expected = [problem.evaluate(w)]
    for step in range(1, 4):  # the loop's step t trains on minibatch t + 1
        _, grad = loss_and_grad(problem.model, w, *problem.batches(step), loss="cross_entropy")
        w = w - 0.5 * grad
        expected.append(problem.evaluate(w))
    np.testing.assert_array_equal(curve.losses, torch.stack(expected).double().numpy())


def test_problem_runs_are_paired_and_block_newton_trains():
    problem = plane_wave_problem(n_models=3, n_points=60, hidden=8)
    gd = run(SGD(0.05, name="GD"), problem.seeded(0), 40)
    newton = run(BlockNewton(7), problem.seeded(0), 40)
    again = run(BlockNewton(7), problem.seeded(0), 40)
    # paired: the same initialisations, so the same starting losses; another seed is other models
    np.testing.assert_array_equal(gd.losses[0], newton.losses[0])
    assert not np.array_equal(run(SGD(0.05), problem.seeded(1), 0).losses[0], gd.losses[0])
    np.testing.assert_array_equal(newton.losses, again.losses)  # the seed also fixes the blocks
    # both train every model (block Newton by more than half in 40 steps)
    assert (gd.final < gd.losses[0]).all() and (newton.final < 0.5 * newton.losses[0]).all()
    assert len(newton.info["newton_fraction"]) == 40
    # tuning uses another seed's models and picks an interior rate on this problem
    choice = tune_lr(lambda lr: SGD(lr, name="GD"), (1e-3, 0.03, 1.0, 30.0), problem.seeded(1000), 20)
    assert choice.name == "GD" and not choice.at_edge and choice.scores[-1] == math.inf


def test_final_summary_uses_student_t_over_the_models():
    from scipy.stats import t

    problem = plane_wave_problem(n_models=3, n_points=40, hidden=6)
    curve = run(SGD(0.05), problem.seeded(0), 3)
    s = final_summary(curve)
    finals = curve.final
    assert s.n == 3 and s.mean == pytest.approx(finals.mean(), rel=1e-12)
    # three seeds: t(0.975, 2) = 4.30, more than twice the normal 1.96
    assert s.ci95 == pytest.approx(t.ppf(0.975, 2) * finals.std(ddof=1) / math.sqrt(3), rel=1e-12)


# ------------------------------------------------------------------------------------ settings

def test_settings_per_profile():
    smoke, paper, full = (Settings.for_profile(p) for p in ("smoke", "paper", "full"))
    # at least 3 initialisations (training seeds) for every paired verdict, 10 in full
    assert (smoke.wave_models, smoke.wave_steps, smoke.mnist_models, smoke.mnist_steps, smoke.mnist_record_every,
            smoke.cost_inputs) == (10, 150, 5, 10, 5, (16, 64, 256))
    assert (paper.wave_models, paper.wave_steps, paper.mnist_models, paper.mnist_steps, paper.mnist_record_every,
            paper.cost_inputs) == (10, 300, 5, 200, 10, (16, 64, 256, 1024, 4096))
    # no published scale beyond the chapter's own: full adds seeds on MNIST and the b = 32 row
    assert full.mnist_models == 10 and full.wave_models == 10
    assert dataclasses.replace(full, mnist_models=5, mnist_second_order=paper.mnist_second_order) == paper
    assert Settings.for_profile(Profile("smoke")) == smoke
    for s in (smoke, paper):
        assert s.gd_grid_wave == (0.01, 0.03, 0.1, 0.3, 1.0) and s.gd_grid_mnist == (0.1, 0.3, 1.0, 3.0, 10.0)
        assert s.adam_grid == (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
        assert (s.tuning_seed, s.report_seed, s.cost_inputs_full) == (1000, 0, (16, 32, 64))
        assert s.concave_grid("double well") == ((-1.2,), (1.2,), 401)
    # the claims read these optimisers by name; every one has its own colour
    wave = [o.name for o in paper.wave_second_order]
    assert [o.name for o in smoke.wave_second_order] == [n for n in wave if "b=7" in n]
    assert wave == ["block Newton (backprop2, b=7)", "block Newton (backprop2, b=1) + line search",
                    "block Newton (backprop2, b=7) + line search", "block Newton (backprop2, b=32) + line search",
                    "block Newton (backprop2, full) + line search", "block Newton (newton, b=7) + line search",
                    "block Newton (saddle_free, full) + line search"]
    assert [o.name for o in smoke.mnist_second_order] == wave[:3] == [o.name for o in paper.mnist_second_order]
    assert [o.name for o in full.mnist_second_order] == wave[:4]
    for s in (smoke, paper):  # the tuned variants: without and with the line search, b = 7, both problems
        for grids in (s.newton_grids_wave, s.newton_grids_mnist):
            assert [g.template.name for g in grids] == [wave[0], wave[2]]
            assert all(len(g.lr_grid) == len(g.max_step_grid) == 3 for g in grids)
    assert len({methods.color(n) for n in wave}) == len(wave)
    with pytest.raises(ValueError, match="unknown profile"):
        Settings.for_profile("huge")
    with pytest.raises(ValueError, match="no concave grid"):
        smoke.concave_grid("Rosenbrock")


def test_settings_for_no_profile_follows_the_environment(monkeypatch):
    monkeypatch.setenv("BACKPROP2_PROFILE", "smoke")
    assert Settings.for_profile(None) == Settings.for_profile("smoke")
    monkeypatch.delenv("BACKPROP2_PROFILE")
    assert Settings.for_profile(None) == Settings.for_profile("paper")


# ------------------------------------------------------------------------------------ block Hessians

def test_block_hessian_section_is_exact_and_catches_a_wrong_block(monkeypatch):
    check = ch4.check_block_hessians(TINY)
    assert [(c.activation, c.loss) for c in check.cases] == [
        ("tanh", "squared"), ("tanh", "cross_entropy"), ("relu", "squared"), ("relu", "cross_entropy")]
    assert check.max_error < 1e-10
    table = ch4.hessian_table(check)
    assert table.count("\n") == 1 + len(check.cases) and "| tanh | squared | 2-4-1 |" in table

    exact = ch4.loss_grad_and_block_hessians

    def one_wrong_entry(*args, **kwargs):
        value, grad, blocks = exact(*args, **kwargs)
        blocks = [h.clone() for h in blocks]
        blocks[0][0, 0, 0, 0] += 1e-4  # model 0, its first block, one diagonal entry
        return value, grad, blocks

    monkeypatch.setattr(ch4, "loss_grad_and_block_hessians", one_wrong_entry)
    wrong = ch4.check_block_hessians(TINY)
    assert all(c.error == pytest.approx(1e-4, rel=1e-6) for c in wrong.cases)


# ------------------------------------------------------------------------------------ the inflection-point argument

def _double_well_reference(n: int):
    """The double well's concave grid points and one step from each, written out in 1-D."""
    x = np.linspace(-1.2, 1.2, n)
    g, h = x ** 3 - x, 3 * x ** 2 - 1
    keep = (h < 0) & (np.abs(g) > 1e-8)
    x, g, h = x[keep], g[keep], h[keep]
    f = lambda v: v ** 4 / 4 - v ** 2 / 2  # noqa: E731
    unit = g ** 2 / np.abs(h)
    down = -np.sign(g)
    u = 6 * x * down * np.abs(g) / h ** 2  # the third derivative along the downhill direction

    def step(rule: str, max_step: float):
        lam = np.abs(h) if rule == "abs" else h
        newton = max_step * np.abs(h) > np.abs(g)
        return np.where(newton, x - g / lam, x - 0.1 * g)

    return x, f, unit, u, step


def test_inflection_section_matches_the_written_out_double_well():
    inflection = ch4.inflection_argument(TINY)
    x, f, unit, u, step = _double_well_reference(41)
    assert inflection.n_points == len(x) > 10
    np.testing.assert_allclose(inflection.u, u, rtol=1e-9)
    np.testing.assert_allclose(inflection.change_abs, (f(step("abs", math.inf)) - f(x)) / unit, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(inflection.change_newton, (f(step("newton", math.inf)) - f(x)) / unit, rtol=1e-9,
                               atol=1e-12)
    assert inflection.cubic_accuracy == pytest.approx(np.mean((u < 9) == ((f(step("abs", math.inf)) - f(x)) < 0)))

    lowers = {(rule, guard): f(step(rule, 1.0 if guard else math.inf)) < f(x)
              for rule in ("abs", "newton") for guard in (False, True)}
    dw = inflection.counts[0]
    assert dw.function == "double well" and dw.n_points == len(x)
    newton_up, newton_up_g = ~lowers["newton", False], ~lowers["newton", True]
    assert dw.newton_raises == pytest.approx(newton_up.mean())
    assert dw.abs_lowers_where_newton_raises == pytest.approx(lowers["abs", False][newton_up].mean())
    assert dw.abs_lowers == pytest.approx(lowers["abs", False].mean())
    assert dw.newton_raises_guarded == pytest.approx(newton_up_g.mean())
    assert dw.abs_lowers_where_newton_raises_guarded == pytest.approx(lowers["abs", True][newton_up_g].mean())
    assert dw.abs_lowers_guarded == pytest.approx(lowers["abs", True].mean())
    assert dw.guarded_rescues == bool(lowers["abs", True][newton_up_g].all())
    assert dw.unguarded_fails == int((~lowers["abs", False]).sum())
    # every function: the counts agree with each other, and the table shows them as percentages
    assert [c.function for c in inflection.counts] == ["double well", "saddle well", "Himmelblau"]
    for c in inflection.counts:
        assert c.unguarded_fails == round((1 - c.abs_lowers) * c.n_points)
    table = ch4.concave_table(inflection)
    assert f"| double well | {len(x)} | {newton_up.mean():.0%} |" in table
    assert ch4.cubic_model_line(inflection).startswith(f"double well: {len(x)} concave points;")


# ------------------------------------------------------------------------------------ toy trajectories

def test_trajectory_section_follows_the_written_out_steps():
    result = ch4.toy_trajectories(TINY)
    assert list(result.paths) == ["saddle well", "Himmelblau"] and result.n_steps == 4
    assert list(result.paths["saddle well"]) == ["GD", "Newton", "|λ| Newton", "saddle-free Newton"]
    # GD on the saddle well, by hand: the gradient is (x³ − x, y)
    x = torch.tensor([[0.15, 0.9], [-0.3, -1.1], [0.05, -0.4]], dtype=torch.float64)
    start = x
    for k in range(4):
        x = x - 0.1 * torch.stack([x[:, 0] ** 3 - x[:, 0], x[:, 1]], -1)
        torch.testing.assert_close(result.paths["saddle well"]["GD"][k + 1], x)
    torch.testing.assert_close(result.final_points["saddle well"]["GD"], x)
    torch.testing.assert_close(result.final_values["saddle well"]["GD"], saddle_well(x) - saddle_well(start))
    # guarded plain Newton from (0.05, -0.4): inside the guard it is the exact Newton step, which on
    # the saddle well jumps to y = 0 and moves x by −g/h
    a = 0.05
    assert result.paths["saddle well"]["Newton"][1, 2].tolist() == pytest.approx(
        [a - (a ** 3 - a) / (3 * a ** 2 - 1), 0.0], abs=1e-12)
    table = ch4.trajectory_table(result)
    assert "mean f change after 4 steps" in table and table.count("\n") == 1 + 2 * 4


# ------------------------------------------------------------------------------------ training networks

def test_plane_wave_comparison_is_tune_lr_then_run_on_the_seeded_problem():
    comparison = ch4.compare_on_plane_wave(TINY)
    problem = plane_wave_problem(n_models=2, n_points=20, hidden=4)
    tuning = problem.seeded(TINY.tuning_seed)  # TINY tunes on 2 initialisations, like it reports
    gd = tune_lr(lambda lr: SGD(lr, name="GD"), TINY.gd_grid_wave, tuning, TINY.wave_steps)
    adam = tune_lr(Adam, TINY.adam_grid, tuning, TINY.wave_steps)
    newton = tuple(ch4.tune_block_newton(g, tuning, TINY.wave_steps) for g in TINY.newton_grids_wave)
    assert comparison.tuned == (gd, adam, *newton)
    optimisers = {o.name: o for o in (SGD(gd.best, name="GD"), GradientDescentLineSearch(_LS), Adam(adam.best),
                                      *TINY.wave_second_order)}
    optimisers.update({c.name: c.stepper() for c in newton})
    assert list(comparison.curves) == list(optimisers)
    assert list(optimisers)[-2:] == ["block Newton (backprop2, b=7), tuned",
                                     "block Newton (backprop2, b=7) + line search, tuned"]
    for key, opt in optimisers.items():
        direct = run(opt, problem.seeded(0), TINY.wave_steps, record_every=2)
        curve = comparison.curves[key]
        np.testing.assert_array_equal(curve.losses, direct.losses)
        np.testing.assert_array_equal(curve.steps, [0, 2, 4])
        assert curve.info == direct.info and curve.params is None
        assert curve.n_seeds == 2  # every initialisation is a training seed
    assert comparison.accuracy is None and comparison.problem.model.n_params == problem.model.n_params
    table = ch4.training_table(comparison)
    assert "test accuracy" not in table and table.count("\n") == 1 + len(optimisers)
    assert "| GD + line search | " in table and "| block Newton (backprop2, b=7), tuned | " in table
    tuning_rows = ch4.tuning_table(comparison).splitlines()
    assert tuning_rows[0] == "| tuned | grid | chosen | at grid edge |" and len(tuning_rows) == 2 + 4
    assert tuning_rows[4].startswith("| block Newton (backprop2, b=7), tuned | lr 0.1, 0.3 × max_step 0.01, 1 | lr ")


def test_tune_block_newton_is_the_best_pair_of_a_written_out_grid_search():
    problem = plane_wave_problem(n_models=2, n_points=20, hidden=4).seeded(5)
    grid = ch4.NewtonGrid(BlockNewton(7), (0.03, 0.3, 3.0), (0.01, 0.1, 1.0))
    choice = ch4.tune_block_newton(grid, problem, 6)
    scores = {}
    for max_step in grid.max_step_grid:
        for lr in grid.lr_grid:
            curve = run(BlockNewton(7, lr=lr, max_step=max_step), problem, 6, record_every=6)
            scores[max_step, lr] = math.inf if curve.diverged.any() else float(curve.final.mean())
    best = min(scores, key=lambda k: (scores[k], k[0], k[1]))
    assert (choice.max_step, choice.lr.best) == best
    assert choice.scores == tuple(tuple(scores[m, lr] for lr in grid.lr_grid) for m in grid.max_step_grid)
    assert choice.stepper() == BlockNewton(7, lr=best[1], max_step=best[0])
    assert choice.name == "block Newton (backprop2, b=7), tuned"
    assert choice.best == f"lr {best[1]:g}, max_step {best[0]:g}"


def test_newton_choice_reports_which_value_sits_at_its_grid_edge():
    lr = ch4.LRChoice("x", 0.3, (0.1, 0.3, 1.0), (2.0, 1.0, 3.0))
    inside = ch4.NewtonChoice("x, tuned", lr, 1.0, (0.1, 1.0, 10.0), ((1.0,) * 3,) * 3, BlockNewton(7))
    assert not inside.at_edge and inside.edge == ""
    low = dataclasses.replace(inside, max_step=0.1)
    assert low.at_edge and low.edge == "max_step (smallest)"
    both = dataclasses.replace(low, lr=dataclasses.replace(lr, best=1.0))
    assert both.edge == "lr, max_step (smallest)"


def _comparison(rows: dict[str, list[float]]) -> Comparison:
    curves = {name: Curve(name, np.array([[1.0] * len(v), v]), steps=np.array([0, 1]), n_seeds=len(v))
              for name, v in rows.items()}
    return Comparison(None, (), curves)


def test_equivalence_needs_the_whole_paired_interval_inside_the_margin():
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    close = _comparison({"a": [v + 0.01 for v in base], "b": base})
    assert ch4.equivalent(close, "a", "b") and ch4.verdict(close, "a", "b").verdict == "higher"
    noisy = _comparison({"a": [v + d for v, d in zip(base, (0.3, -0.3, 0.25, -0.2, 0.1))], "b": base})
    assert ch4.verdict(noisy, "a", "b").verdict == "not distinguishable"
    assert not ch4.equivalent(noisy, "a", "b")  # overlapping intervals would have passed
    far = _comparison({"a": [v * 1.5 for v in base], "b": base})
    assert not ch4.equivalent(far, "a", "b") and ch4.equivalent(far, "a", "b", margin=0.6)


def test_escape_runs_every_method_from_every_concave_grid_point():
    escape = ch4.escape_from_concave(TINY)
    assert escape.functions == ("saddle well", "Himmelblau") and escape.n_steps == 4
    from backprop2lib.second_order.toy import TEST_FUNCTIONS, classify_endpoints, concave_points, trajectories
    for name, lo, hi, n in TINY.concave_grids[1:]:
        f = TEST_FUNCTIONS[name]
        x0 = concave_points(f, lo, hi, n)
        for m in TINY.toy_methods:
            end = trajectories(m, f, x0, 4)[-1]
            np.testing.assert_array_equal(escape.change[name][m.name], (f(end) - f(x0)).numpy())
            assert escape.endpoints[name][m.name] == tuple(classify_endpoints(f, end))
            shares = [escape.fraction(name, m.name, e) for e in ch4.ENDPOINTS]
            assert sum(shares) == pytest.approx(1.0)
    v = escape.verdict("saddle well", "|λ| Newton", "Newton")
    assert v.paired and v.a.n == escape.n_starts("saddle well")
    with pytest.raises(ValueError, match="endpoint"):
        escape.fraction("saddle well", "Newton", "maximum")
    table = ch4.escape_table(escape)
    assert table.count("\n") == 1 + 2 * len(TINY.toy_methods) and "ended at a saddle or maximum" in table


def test_mnist_comparison_keeps_parameters_and_measures_accuracy():
    comparison = ch4.compare_on_mnist(TINY)
    problem = mnist_problem(n_models=2, hidden=3, batch_size=8, n_eval=20)
    tuning = mnist_problem(n_models=1, hidden=3, batch_size=8, n_eval=20).seeded(TINY.tuning_seed)
    adam = tune_lr(Adam, TINY.adam_grid, tuning, TINY.mnist_steps)
    assert comparison.tuned[1] == adam  # every optimiser tuned on the one tuning initialisation
    assert comparison.tuned[2] == ch4.tune_block_newton(TINY.newton_grids_mnist[0], tuning, TINY.mnist_steps)
    direct = run(Adam(adam.best), problem.seeded(0), TINY.mnist_steps, record_every=2, keep_params=True)
    curve = comparison.curves["Adam"]
    np.testing.assert_array_equal(curve.losses, direct.losses)
    torch.testing.assert_close(curve.params, direct.params, rtol=0, atol=0)
    assert list(comparison.accuracy) == list(comparison.curves)
    np.testing.assert_array_equal(comparison.accuracy["Adam"], problem.accuracy(direct.params).numpy())
    table = ch4.training_table(comparison)
    assert "test accuracy (%)" in table and table.count("\n") == 1 + 3 + 2 + 2


def test_verdict_at_time_reads_the_loss_where_the_other_stopped():
    slow = Curve("slow", np.array([[3.0, 3.0, 3.0], [2.0, 2.5, 2.2], [0.1, 0.2, 0.3]]), steps=np.array([0, 1, 2]),
                 seconds=np.array([0.0, 1.0, 2.0]), n_seeds=3)
    fast = Curve("fast", np.array([[3.0, 3.0, 3.0], [1.0, 1.1, 1.2]]), steps=np.array([0, 1]),
                 seconds=np.array([0.0, 1.0]), n_seeds=3)
    comparison = Comparison(None, (), {"slow": slow, "fast": fast})
    assert ch4.verdict(comparison, "slow", "fast").verdict == "lower"  # per step, at the end
    at = ch4.verdict_at_time(comparison, "slow", "fast")
    assert at.verdict == "higher" and at.difference.mean == pytest.approx(np.mean([1.0, 1.4, 1.0]))


# ------------------------------------------------------------------------------------ cost per step

def test_cost_section_times_the_networks_it_says():
    cost = ch4.cost_per_step(TINY)
    n_params = lambda d: (d + 1) * 3 + (3 + 1) * 10  # noqa: E731  d -> 3 -> 10
    assert [p for p, _ in cost.block] == [n_params(4), n_params(8)]
    assert [p for p, _ in cost.full] == [n_params(4), n_params(6)]
    assert [p for p, _ in cost.tensor] == [n_params(4), n_params(6)]
    assert cost.block_size == 7 and cost.largest_shared("tensor") == n_params(4)


def test_one_block_per_tensor_is_the_full_layer_blocks_of_the_recursion():
    # the block size the cost section uses for d_in = 6 puts each weight or bias tensor in one block
    from backprop2lib.models.mlp import MLP
    from backprop2lib.second_order.blocks import block_partition

    model = MLP((6, 3, 10), activation="sigmoid")
    partition = block_partition(model, max(6, 10) * 3, generator=torch.Generator().manual_seed(0))
    assert partition.n_blocks == 4  # W1, b1, W2, b2
    assert sorted(g.size for g in partition.groups) == [3, 10, 18, 30]


def test_cost_exponents_ratio_and_table():
    cost = Cost(7, ((100, 1e-3), (400, 4e-3), (1600, 1.6e-2)), ((100, 0.1), (200, 0.4)), ((100, 0.05), (200, 0.4)))
    assert cost.block_exponent == pytest.approx(1.0) and cost.full_exponent == pytest.approx(2.0)
    assert cost.tensor_exponent == pytest.approx(3.0)
    assert cost.largest_shared("full") == 100 and cost.over_block("full") == pytest.approx(100.0)
    assert cost.over_block("tensor") == pytest.approx(50.0)
    table = ch4.cost_table(cost).splitlines()
    assert table[0] == ("| P | b = 7 (ms / step) | one block per tensor (ms / step) | "
                        "full Hessian, torch.func (ms / step) |")
    assert table[2:] == ["| 100 | 1.0 | 50 | 100 |", "| 200 | – | 400 | 400 |", "| 400 | 4.0 | – | – |",
                         "| 1,600 | 16.0 | – | – |"]
    assert ch4.cost_line(cost) == ("fitted exponent, b = 7: 1.00; one block per tensor: 3.00; full Hessian: 2.00; "
                                   "at P = 100, one block per tensor / b=7: 50x, full / b=7: 100x")


# ------------------------------------------------------------------------------------ run and claims

def test_run_returns_every_section(results):
    assert [f.name for f in dataclasses.fields(Results)] == ["hessians", "inflection", "trajectories", "escape", "wave",
                                                              "mnist", "cost"]
    assert isinstance(results.hessians, HessianCheck) and len(results.hessians.cases) == 4
    assert isinstance(results.inflection, Inflection) and len(results.inflection.counts) == 3
    assert isinstance(results.trajectories, Trajectories) and results.trajectories.n_steps == TINY.toy_steps
    assert isinstance(results.wave, Comparison) and len(results.wave.curves) == 3 + len(TINY.wave_second_order) + 2
    assert isinstance(results.mnist, Comparison) and len(results.mnist.curves) == 3 + len(TINY.mnist_second_order) + 2
    assert results.mnist.accuracy is not None and results.wave.accuracy is None
    assert isinstance(results.cost, Cost) and len(results.cost.block) == 2 and len(results.cost.full) == 2
    # the sections give the same numbers alone as inside run()
    np.testing.assert_array_equal(ch4.inflection_argument(TINY).change_abs, results.inflection.change_abs)
    np.testing.assert_array_equal(ch4.compare_on_plane_wave(TINY).curves["Adam"].losses,
                                  results.wave.curves["Adam"].losses)


def test_check_claims_prints_one_line_per_claim(results, capsys):
    claims = ch4.check_claims(results)
    lines = capsys.readouterr().out.splitlines()
    assert [s for s, _ in claims.verdicts] == CLAIMS
    wave, mnist = results.wave.problem.model.n_params, results.mnist.problem.model.n_params
    assert lines[0] == "training seeds: 2 (initialisations per optimiser, the fewest of both problems)"
    assert lines[1] == (f"block-Hessian checks: 4; test functions: 3; plane wave parameters: {wave}; "
                        f"MNIST parameters: {mnist}")
    assert lines[2:] == [f"{s}: {v}" for s, v in claims.verdicts]
    assert dict(claims.verdicts)[CLAIMS[0]] is True  # the tiny sizes check exact Hessians too


def test_check_claims_raises_when_a_claim_fails(results, capsys):
    wrong = dataclasses.replace(results, hessians=HessianCheck((dataclasses.replace(results.hessians.cases[0],
                                                                                    error=1e-3),)))
    claims = ch4.check_claims(wrong)
    assert dict(claims.verdicts)[CLAIMS[0]] is False
    with pytest.raises(AssertionError, match="Block Hessians equal"):
        claims.assert_all()
    assert [s for s, _ in claims.verdicts] == CLAIMS



def test_findings_give_every_number_the_chapter_quotes():
    import re
    from pathlib import Path

    settings = dataclasses.replace(TINY, wave_second_order=Settings.for_profile("paper").wave_second_order)
    results = ch4.run(settings)
    values = ch4.findings(results)
    assert all(isinstance(v, str) and v for v in values.values())
    chapter = (Path(__file__).parents[2] / "notebooks" / "04_second_order.md").read_text()
    quoted = set(re.findall(r"\{glue:text\}`([A-Za-z_0-9]+)`", chapter))
    assert quoted and quoted <= set(values), sorted(quoted - set(values))
    assert values["seeds_wave"] == "2" and values["wave_steps"] == "4"
    assert values["wave_b7_tuned_choice"] == ch4.newton_choice(results.wave, "block Newton (backprop2, b=7), tuned").best
    assert values["wave_b7_ls_vs_gd_ls"] in ("lower than", "higher than", "not distinguishable from")


def test_findings_numbers_are_written_without_exponents():
    curve = Curve("x", np.array([[1.0] * 4, [0.00283, 0.00293, 0.00273, 0.00283]]), steps=np.array([0, 1]), n_seeds=4)
    from backprop2lib.stats import interval_text

    assert interval_text(curve.seed_summary(), "matched") == "0.00283 ± 0.00013"  # to the half-width's 2nd digit
    assert ch4._ms(0.339) == "339" and ch4._ms(0.00084) == "0.84" and ch4._ms(0.0206) == "21"
