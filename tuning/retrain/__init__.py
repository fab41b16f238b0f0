"""Train a configuration from scratch, and the commands built on that.

``training`` is the one way to retrain (a named recipe and schedule in, scores and a
status out); ``selection`` picks what to retrain from a finished search; ``finalizer``
retrains the best and reads the test set once; ``ablation`` trains skip on and off, paired
over seeds; ``calibration`` times a short training for the search's cost estimate.
"""
