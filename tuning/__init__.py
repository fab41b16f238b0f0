"""Search, train and evaluate residual CNNs on Fashion-MNIST with KerasTuner.

Layers, bottom up (a module imports only from its own layer or the layers below it):
- foundations: ``errors``, ``stats``, ``plan``, ``data``, ``kt_internals`` (every KerasTuner
  internal we rely on), ``config``;
- ``rundir/``: the run directory (atomic records, run.json, the lock, resume);
- ``machine/``: precision, the search's cost, memory;
- ``show/``: what a run shows (importance, plots, report.md);
- ``retrain/``: training a configuration from scratch, the finalizer and the ablation;
- ``engine/``: the Hyperband search, single or distributed, with its confirmation;
- the command line: ``cli`` and the commands ``search``, ``finalize``, ``ablate``, ``report``.
"""

import os
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fashion-resnet-tuner")
except PackageNotFoundError:  # run from a checkout without installing
    __version__ = "0+unknown"

# TensorFlow prints pages of C++ start-up noise (CUDA probing, CPU flags); users only need
# our own lines (tuning.tfstartup.quiet_tensorflow_startup). TUNING_TF_LOGS=1 brings them back.
TF_LOGS_REQUESTED = os.environ.get("TUNING_TF_LOGS") == "1"
if not TF_LOGS_REQUESTED:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
