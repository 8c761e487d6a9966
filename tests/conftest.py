"""Shared set-up of the test suite.

The problems in these tests are tiny (at most a few hundred samples), so thread start-up and
contention cost far more than the work itself, especially on a shared CI machine: with the
default two threads, one linear-probe call took 2-4 s instead of 0.16 s, and SFDA on a
50 x 2048 matrix 8-15 s instead of 1.6-2.9 s. Every BLAS/OpenMP pool and torch run on one thread.
"""

from __future__ import annotations

import os

# The tests never reach a hub: offline unless a test points HF_ENDPOINT at its loopback hub
# (set before anything imports huggingface_hub, which reads it once).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from threadpoolctl import threadpool_limits

_THREAD_LIMITS = threadpool_limits(limits=1)
torch.set_num_threads(1)
