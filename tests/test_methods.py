"""The one method registry: ids, display names and colours, and that the chapters' names resolve."""

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from backprop2lib import methods  # noqa: E402
from backprop2lib.experiments.eve import inner_loops  # noqa: E402
from backprop2lib.experiments.continual_learning import METHODS as CHAPTER_7  # noqa: E402
from backprop2lib.experiments.scale_comparison import METHODS as CHAPTER_2  # noqa: E402
from backprop2lib.optim.line_search import LineSearch  # noqa: E402
from backprop2lib.optim.steppers import STEPPERS  # noqa: E402
from backprop2lib.optim import Curve  # noqa: E402
from backprop2lib.plotting import plot_curves, plot_summaries  # noqa: E402
from backprop2lib.recognition.baselines import BASELINES  # noqa: E402
from backprop2lib.recognition.class_models import METHODS as CHAPTER_5  # noqa: E402
from backprop2lib.second_order import BlockNewton  # noqa: E402
from backprop2lib.stats import summarise  # noqa: E402

CHAPTERS = (1, 2, 3, 4, 5, 6, 7)


def test_ids_names_and_aliases_each_name_one_method():
    keys = [k for m in methods.METHODS for k in {m.id, m.name, *m.aliases}]  # "pretrained" is id and name
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    assert len({m.id for m in methods.METHODS}) == len({m.name for m in methods.METHODS}) == len(methods.METHODS)
    for m in methods.METHODS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", m.id), m.id
        assert methods.get(m.id) is methods.get(m.name) is m
        for alias in m.aliases:
            assert methods.get(alias) is m


def test_every_colour_is_a_hex_colour_and_unique_within_each_chapter():
    for m in methods.METHODS:
        assert re.fullmatch(r"#[0-9a-f]{6}", m.color) and mcolors.is_color_like(m.color), (m.id, m.color)
        assert m.chapters and set(m.chapters) <= set(CHAPTERS), m.id
    for chapter in CHAPTERS:
        shown = methods.in_chapter(chapter)
        colours = [m.color for m in shown]
        clashes = {c: [m.id for m in shown if m.color == c] for c in colours if colours.count(c) > 1}
        assert not clashes, f"chapter {chapter}: {clashes}"


def test_the_chapters_names_resolve_to_entries_of_that_chapter():
    def ids_of(chapter):
        return {m.id for m in methods.in_chapter(chapter)}

    assert set(methods.ids(*CHAPTER_2)) <= ids_of(2)
    assert set(CHAPTER_5) <= ids_of(5) and set(methods.ids(*BASELINES)) <= ids_of(5)
    from backprop2lib.learned.catalogue import RECIPES
    assert set(methods.ids(*STEPPERS, *RECIPES)) == ids_of(6)
    assert set(CHAPTER_7) == ids_of(7)
    loops = inner_loops(None, None, adam_lr=1e-2)  # chapter 3's inner loops, by the names it plots
    assert set(methods.ids(*loops, "Meta-SGD")) == ids_of(3)
    ls = LineSearch()
    chapter_4 = [BlockNewton(7), *[BlockNewton(b, line_search=ls) for b in (1, 7, 32, None)],
                 BlockNewton(7, rule="newton", line_search=ls),
                 BlockNewton(None, rule="saddle_free", damping=1e-3, line_search=ls)]
    registered = {m.name for m in methods.METHODS}
    for opt in chapter_4:  # each has its own entry: none falls back to a derived colour
        assert opt.name in registered and 4 in methods.get(opt.name).chapters, opt.name
    assert methods.ids("GD", "GD + line search", "Adam", "Newton", "|λ| Newton", "saddle-free Newton")


def test_lookups_by_id_and_by_display_name():
    assert methods.get("maml").name == "MAML" and methods.get("MAML").id == "maml"
    assert methods.color("backprop2 quartic") == methods.color("quartic") == methods.get("quartic").color
    assert methods.name("scale_gradient") == "meta-gradient scale"
    assert methods.names("maml", "Reptile", "mean_only") == ("MAML", "Reptile", "backprop2 mean only")
    assert methods.ids("Meta-SGD", "Adam (tuned)", "SGD + line search") == ("meta_sgd", "adam", "gd_line_search")
    assert methods.color("Adam (tuned)") == methods.color("Adam")


def test_unknown_names_raise_and_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"method: unknown 'iMAML'; valid ids: maml, fomaml, reptile"):
        methods.get("iMAML")
    with pytest.raises(ValueError, match="'backprop2 quartic'"):  # the display names are listed too
        methods.color("maml ")
    with pytest.raises(ValueError, match="expected an id or a display name"):
        methods.get(None)
    with pytest.raises(ValueError, match="chapter"):
        methods.in_chapter(8)


def test_derived_block_newton_names_take_their_rules_colour():
    derived = methods.get("block Newton (backprop2, b=16) + line search")
    assert derived.color == methods.color("|λ| Newton") and derived.id == "block_newton_backprop2_b16_ls"
    assert methods.color("block Newton (newton, full)") == methods.color("Newton")
    assert methods.color("block Newton (damped, b=3)") == methods.color("Newton")
    assert methods.color("block Newton (saddle_free, b=7)") == methods.color("saddle-free Newton")
    # registered variants keep their own shade; an unknown rule is not derived
    assert methods.color("block Newton (backprop2, b=7) + line search") != methods.color("|λ| Newton")
    with pytest.raises(ValueError, match="unknown"):
        methods.get("block Newton (cubic, b=7)")


def test_plots_draw_each_method_in_its_registry_colour():

    fig, axes = plt.subplots(1, 2)
    try:
        rows = [summarise(np.array([1.0, 2.0, 3.0]))] * 2
        plot_summaries(axes[0], [1, 2], {"Eve": rows, "Adam (tuned)": rows}, xlabel="x", ylabel="y")
        names = ["GD", "block Newton (backprop2, b=1) + line search"]
        plot_curves(axes[1], [Curve(n, np.ones((3, 2))) for n in names])
        for ax, expected in ((axes[0], ["Eve", "Adam (tuned)"]), (axes[1], names)):
            drawn = [mcolors.to_hex(line.get_color()) for line in ax.get_lines()]
            assert drawn == [methods.color(n) for n in expected]
        with pytest.raises(ValueError, match="unknown 'not a method'"):
            plot_summaries(axes[0], [1, 2], {"not a method": rows}, xlabel="x", ylabel="y")
    finally:
        plt.close(fig)
