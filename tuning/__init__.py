"""Search, train and evaluate residual CNNs on Fashion-MNIST with KerasTuner."""

import os

# TensorFlow prints pages of C++ start-up noise (CUDA probing, CPU flags); users
# only need our own lines. They can still turn it back on by setting the variable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
