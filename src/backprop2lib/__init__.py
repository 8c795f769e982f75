"""backprop2lib: the small library behind the backprop2 book.

One module per concept:

* ``profiles``   - smoke / paper / full experiment scales
* ``runtime``    - seeding and device choice
* ``models``     - batched functional networks (parameters stacked over tasks)
* ``tasks``      - task distributions sampled in one batched call
* ``meta``       - meta-learners (MAML, first-order MAML, Reptile, pretrained, Meta-SGD, the backprop2
                   meta-learner, meta-gradient scale) and evaluation
* ``scale``      - flat-vector objectives, regularisers, Eve's learning rates, the regularised inner loop
* ``optim``      - the optimisation core: steppers, the loop, curves, learning-rate tuning, line search
                   and the dynamic terminator, batched over tasks
* ``second_order`` - block-diagonal generalised Newton steps
* ``recognition`` - recognition as reconstruction: per-digit class models and the classifier
* ``learned``    - the coordinatewise learned optimiser, its problems, meta-training and stored jobs
* ``continual``  - tasks in sequence: Fisher, consolidation penalties, the sequential trainer
* ``store``      - trained models too long for a chapter's run, stamped and committed
* ``experiments``- drivers that train and evaluate a chapter's methods the same way
* ``stats``      - means, confidence intervals, divergence counts
* ``claims``     - the chapter claims that notebooks assert and print
* ``plotting``   - the house style
* ``run``        - the parallel papermill runner (``python -m backprop2lib.run``)
"""

__version__ = "0.1.0"
