"""Training: the one loop every notebook trains with, its losses, History and checkpoints.

May import ``core`` and ``data``; never ``metrics`` or ``viz`` (same layer, kept independent):
plot a History with ``course_utils.viz.plot_history``.

Notebooks import from here::

    from course_utils.engine import TrainConfig, classification_loss, fit

    history = fit(model, train_set, classification_loss, optimizer,
                  TrainConfig(steps=300, batch_size=32, checkpoint="crop_classifier"),
                  scheduler=scheduler)

The modules, one job each:

* :mod:`~course_utils.engine.config`: ``TrainConfig``, the settings of a run, checked once;
* :mod:`~course_utils.engine.loop`: ``fit``, the loop (resume, step, validate, save);
* :mod:`~course_utils.engine.losses`: ``classification_loss``, ``detection_loss``,
  ``segmentation_loss`` and how ``fit`` reads a loss (``total_loss``);
* :mod:`~course_utils.engine.sampling`: the resumable batch order (``SeededBatchSampler``);
* :mod:`~course_utils.engine.history`: ``History``, what ``fit`` recorded;
* :mod:`~course_utils.engine.resume`: what a fit checkpoint holds and whether it fits the run;
* :mod:`~course_utils.engine.checkpoint`: checkpoint files (paths, atomic writes, safe loads,
  generator states).
"""

from course_utils.engine.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from course_utils.engine.config import TrainConfig
from course_utils.engine.history import History
from course_utils.engine.loop import fit
from course_utils.engine.losses import classification_loss, detection_loss, segmentation_loss
from course_utils.engine.sampling import SeededBatchSampler, epoch_permutation

__all__ = [
    "CheckpointError",
    "History",
    "SeededBatchSampler",
    "TrainConfig",
    "checkpoint_path",
    "classification_loss",
    "detection_loss",
    "epoch_permutation",
    "fit",
    "load_checkpoint",
    "segmentation_loss",
]
