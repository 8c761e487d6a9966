"""Shared set-up of the test suite.

The problems in these tests are tiny (at most a few hundred samples), so thread start-up and
contention cost far more than the work itself, especially on a shared CI machine: with the
default two threads, one linear-probe call took 2-4 s instead of 0.16 s, and SFDA on a
50 x 2048 matrix 8-15 s instead of 1.6-2.9 s. Every BLAS/OpenMP pool and torch run on one thread.
"""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits

_THREAD_LIMITS = threadpool_limits(limits=1)
torch.set_num_threads(1)
