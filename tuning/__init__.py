"""Search, train and evaluate residual CNNs on Fashion-MNIST with KerasTuner.

Layers, bottom up (a module imports only from its own layer or the layers below it):
- values and files: ``errors``, ``records``, ``stats``, ``plan``, ``data``, ``precision``,
  ``kt_internals`` (the KerasTuner internals we rely on), ``config``;
- run directories, training and rendering: ``rundir``, ``selection``, ``training``,
  ``cost``, ``resume``, ``plots``, ``markdown``;
- engines: ``engine`` (the Hyperband search, single or distributed), ``final`` (retrain
  and test once), ``ablation`` (skip on/off, paired over seeds), ``insights`` (what the search
  teaches) with ``insight_plots``;
- ``reporting`` (report.md from everything a run holds);
- the command line: ``cli`` and the commands ``search``, ``finalize``, ``ablate``, ``report``.
"""

import os
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fashion-resnet-tuner")
except PackageNotFoundError:  # run from a checkout without installing
    __version__ = "0+unknown"

# TensorFlow prints pages of C++ start-up noise (CUDA probing, CPU flags); users only need
# our own lines (tuning.cli.quiet_tensorflow_startup). TUNING_TF_LOGS=1 brings them back.
TF_LOGS_REQUESTED = os.environ.get("TUNING_TF_LOGS") == "1"
if not TF_LOGS_REQUESTED:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
