"""Every method the book compares, once: its id, its display name and its colour.

One entry per method, with the chapters whose figures show it; a method has the same colour in
every chapter, and within a chapter no two methods share one (colours repeat only across
chapters that never show both, e.g. MAML and Adam). Code keys by the ``id`` (chapter 5's class
models, backprop2's ``rule``); tables and legends show the ``name``. :func:`get` accepts either,
and the few other spellings the chapters use (``aliases``, e.g. chapter 3's "Adam (tuned)").

Derived names. Block-Newton optimisers name themselves ``"block Newton (RULE, SIZE)"``, with
``" + line search"`` appended when they search (:class:`backprop2lib.second_order.BlockNewton`).
The variants chapter 4 runs have entries of their own; any other such name resolves to an entry
derived from its rule's base method, with that method's colour: "|λ| Newton" (rule
``backprop2``), "Newton" (``newton`` and ``damped``) or "saddle-free Newton" (``saddle_free``).
Every other unknown name raises a ``ValueError`` that lists the valid ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    id: str  # stable key in code: lower case, underscores
    name: str  # what tables and legends show
    color: str  # "#rrggbb"
    chapters: tuple[int, ...]  # chapters whose figures or tables show it
    aliases: tuple[str, ...] = ()  # other display names chapters use for the same method


METHODS: tuple[Method, ...] = (
    # meta-learners (chapters 1, 2, 3, 5)
    Method("maml", "MAML", "#0b5394", (1, 2, 5)),
    Method("fomaml", "FOMAML", "#6fa8dc", (1, 2, 5)),
    Method("reptile", "Reptile", "#38761d", (1, 2, 5)),
    Method("pretrained", "pretrained", "#990000", (1,)),
    Method("meta_sgd", "Meta-SGD", "#b45f06", (2, 3, 5)),
    Method("scale_gradient", "meta-gradient scale", "#674ea7", (2, 5)),
    Method("mean_only", "backprop2 mean only", "#999999", (2, 5)),
    Method("quadratic", "backprop2 quadratic", "#cc0000", (2, 5, 7)),
    Method("quartic", "backprop2 quartic", "#e69138", (2, 5)),
    Method("eve", "Eve", "#bf9000", (3, 5)),
    # optimisers and inner loops (chapters 3, 4, 6)
    Method("gd", "GD", "#999999", (4,)),
    Method("gd_line_search", "GD + line search", "#444444", (3, 4), aliases=("SGD + line search",)),
    Method("adam", "Adam", "#0b5394", (3, 4, 6), aliases=("Adam (tuned)",)),
    Method("sgd", "SGD", "#999999", (6, 7)),
    Method("nag", "NAG", "#38761d", (6,)),
    Method("rmsprop", "RMSprop", "#6fa8dc", (6,)),
    Method("lstm", "LSTM", "#cc0000", (6,)),
    Method("gru", "GRU", "#e69138", (6,)),
    Method("lstm_scaled", "LSTM, random scaling", "#741b47", (6,)),
    Method("lstm_2x", "LSTM, 2× meta-training", "#660000", (6,)),
    # second-order steps (chapter 4): the rules on the toy functions, then the block-Newton runs
    Method("newton", "Newton", "#cc0000", (4,)),
    Method("abs_newton", "|λ| Newton", "#38761d", (4,)),
    Method("saddle_free_newton", "saddle-free Newton", "#b45f06", (4,)),
    Method("block_newton_b7", "block Newton (backprop2, b=7)", "#6aa84f", (4,)),
    Method("block_newton_b1_ls", "block Newton (backprop2, b=1) + line search", "#93c47d", (4,)),
    Method("block_newton_b7_ls", "block Newton (backprop2, b=7) + line search", "#274e13", (4,)),
    Method("block_newton_b32_ls", "block Newton (backprop2, b=32) + line search", "#0c343d", (4,)),
    Method("block_newton_full_ls", "block Newton (backprop2, full) + line search", "#45818e", (4,)),
    Method("block_newton_newton_b7_ls", "block Newton (newton, b=7) + line search", "#e06666", (4,)),
    Method("block_newton_saddle_free_full_ls", "block Newton (saddle_free, full) + line search", "#e69138", (4,)),
    # consolidation penalties (chapter 7; backprop2's learned-scale prior is "quadratic" above)
    Method("l2", "L2", "#38761d", (7,)),
    Method("ewc", "EWC", "#0b5394", (7,)),
    Method("online_ewc", "online EWC", "#6fa8dc", (7,)),
    # recognition baselines (chapter 5; display names as in recognition.baselines.BASELINES)
    Method("nearest_class_mean", "nearest class mean", "#76a5af", (5,)),
    Method("knn", "kNN (k=1)", "#a64d79", (5,)),
    Method("logistic_regression", "logistic regression", "#45818e", (5,)),
    Method("mlp", "MLP", "#444444", (5,)),
    Method("code_models", "code class models", "#20124d", (5,)),
)

_BLOCK_NEWTON = re.compile(r"block Newton \((?P<rule>[a-z_0-9]+), (?P<size>b=\d+|full)\)(?P<search> \+ line search)?")
_RULE_BASE = {"backprop2": "abs_newton", "newton": "newton", "damped": "newton", "saddle_free": "saddle_free_newton"}


def _index() -> dict[str, Method]:
    out: dict[str, Method] = {}
    for m in METHODS:
        for key in (m.id, m.name, *m.aliases):
            if key in out and out[key] is not m:
                raise RuntimeError(f"methods: {key!r} names both {out[key].id!r} and {m.id!r}")
            out[key] = m
    return out


_BY_KEY = _index()


def get(key: str) -> Method:
    """The method with id, display name or alias ``key`` (or a derived block-Newton name, see above)."""
    if not isinstance(key, str):
        raise ValueError(f"method: expected an id or a display name (str), got {type(key).__name__}")
    if key in _BY_KEY:
        return _BY_KEY[key]
    match = _BLOCK_NEWTON.fullmatch(key)
    if match and match["rule"] in _RULE_BASE:
        base = _BY_KEY[_RULE_BASE[match["rule"]]]
        size = match["size"].replace("=", "")
        suffix = "_ls" if match["search"] else ""
        return Method(f"block_newton_{match['rule']}_{size}{suffix}", key, base.color, ())
    raise ValueError(f"method: unknown {key!r}; valid ids: {', '.join(m.id for m in METHODS)}; "
                     f"or their display names: {', '.join(repr(m.name) for m in METHODS)}")


def color(key: str) -> str:
    """The colour of the method ``key`` (id, display name or alias)."""
    return get(key).color


def name(key: str) -> str:
    """The display name of the method ``key``."""
    return get(key).name


def names(*keys: str) -> tuple[str, ...]:
    """Display names of ``keys``, in that order (a chapter's comparison set)."""
    return tuple(get(k).name for k in keys)


def ids(*keys: str) -> tuple[str, ...]:
    """Ids of ``keys``, in that order."""
    return tuple(get(k).id for k in keys)


def in_chapter(chapter: int) -> tuple[Method, ...]:
    """The methods chapter ``chapter`` shows, in registry order."""
    found = tuple(m for m in METHODS if chapter in m.chapters)
    if not found:
        valid = sorted({c for m in METHODS for c in m.chapters})
        raise ValueError(f"chapter: no methods registered for chapter {chapter!r}; chapters: {valid}")
    return found
