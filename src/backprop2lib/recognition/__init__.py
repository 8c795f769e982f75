"""Recognition as reconstruction: an MNIST image is a regression data set of 784 points.

Each pixel is one point: input = its (column, row) coordinates on a [-1, 1] grid (top row at
+1), target = its grey level in [0, 1]. A tiny network fitted to those points reconstructs the
image. One meta-learner per digit learns what networks that draw that digit look like, and an
image is recognised by which class model, adapted to it, reconstructs it best.

- :mod:`.images`: images ↔ coordinate data sets, and ``ImageTasks`` (a task family of images);
- :mod:`.class_models`: one meta-learned model per digit, with each method of the earlier chapters;
- :mod:`.priors`: what the class models bring to adaptation, stacked over classes;
- :mod:`.classifier`: adapt all class models to many images in one batched computation, and score;
- :mod:`.invariance`: parameter edits that translate, rotate, zoom and brighten a reconstruction;
- :mod:`.pictures`: reconstructions, hidden-unit maps, calibration and the chapter's plots;
- :mod:`.baselines`: ordinary classifiers trained on the same labelled images;
- :mod:`.codes`: class models that adapt only a small code (CAVIA / functa style), held-out-pixel
  scoring, many starts then refinement, and coordinate edits for shifted and rotated digits;
- :mod:`.few_shot`: one draw of a few training images per digit: code class models of several seeds
  against pixel baselines (plain and on moved copies) on the same images.
"""

from .baselines import BASELINES
from .class_models import METHODS, ClassModels, MetaSettings, train_class_models
from .classifier import Classification, auroc_per_class, classify, classify_one_at_a_time, fit_temperature
from .images import ImageTasks, coordinate_grid, images_to_tasks, tasks_to_images
from .priors import ClassPriors

__all__ = [
    "BASELINES", "METHODS", "ClassModels", "MetaSettings", "train_class_models", "Classification",
    "auroc_per_class", "classify", "classify_one_at_a_time", "fit_temperature", "ImageTasks", "coordinate_grid",
    "images_to_tasks", "tasks_to_images", "ClassPriors",
]
