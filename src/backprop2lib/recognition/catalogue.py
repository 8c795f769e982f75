"""Which class models chapter 5 stores, per profile (:func:`trained_models`): one job per cell of the
few-shot curve (n images per digit × draw), each training the code class models of every seed at once.

``paper``: n = 1, 5, 10, 50; 3 draws × 3 training seeds; 300 test images; 600 meta-iterations (an
exploration's validation curve at n = 5, 200 pool images, 2 seeds: 0.65, 0.69, 0.74, 0.76 after 150, 300,
450, 600 iterations, then flat within ±0.02 to 1,200). ``full``: 10 seeds,
5 draws, the 1,000 test images. ``smoke``: two tiny cells, trained afresh and never stored.
"""

from __future__ import annotations

from dataclasses import asdict

from ..store.artifacts import ModelSpec
from .codes import CodeReconstructor, CodeSettings
from .few_shot import CodeExperiment

JOB = "backprop2lib.recognition.jobs"
CHAPTER = "05"
BASELINE_NAMES = ("nearest class mean", "kNN (k=1)", "logistic regression")

SIZES = {
    "smoke": {"sizes": (1, 5), "draws": 1, "seeds": 3, "test_images": 40, "iterations": 3, "starts": 2, "refine": 2},
    "paper": {"sizes": (1, 5, 10, 50), "draws": 3, "seeds": 3, "test_images": 300, "iterations": 600, "starts": 8,
              "refine": 20},
}
SIZES["full"] = {**SIZES["paper"], "draws": 5, "seeds": 10, "test_images": 1000}


def code_experiment(profile: str) -> CodeExperiment:
    """The code class models every cell trains: 8-dimensional codes, a (32, 32) Gaussian network on 16 random
    Fourier features, trained on moved copies (±2 pixels, ±15°) of the drawn images, scored on the half of each
    test image's pixels not adapted on."""
    z = SIZES[profile]
    return CodeExperiment(
        CodeReconstructor(8, (32, 32), "gaussian", fourier=16),
        CodeSettings(iterations=z["iterations"], meta_batch=16, points=128, augment_shift=2.0, augment_angle=15.0),
        starts=z["starts"], steps=5, refine=z["refine"], points=128)


def model_name(n: int, draw: int, profile: str) -> str:
    return f"{CHAPTER}-codes-n{n}-draw{draw}-{profile}"


def trained_models(profile: str) -> list[ModelSpec]:
    if profile not in SIZES:
        raise ValueError(f"profile: unknown profile {profile!r}; valid: {', '.join(SIZES)}")
    z, smoke = SIZES[profile], profile == "smoke"
    experiment = asdict(code_experiment(profile))
    specs = []
    for n in z["sizes"]:
        for draw in range(z["draws"]):
            config = {"experiment": experiment, "n": n, "draw": draw, "seeds": list(range(z["seeds"])),
                      "test_images": z["test_images"], "baselines": list(BASELINE_NAMES)}
            specs.append(ModelSpec(model_name(n, draw, profile), CHAPTER, JOB, config,
                                   estimate_s=5 if smoke else 600, persist=not smoke))
    return specs
