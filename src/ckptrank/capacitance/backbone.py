"""The neural-capacitance probe with the backbone fine-tuned too (the patent's step 4).

The public home of :class:`ModelInput` and :func:`train_probe_backbone`; they are implemented in
``ckptrank.measures._beff_backbone`` (see :mod:`ckptrank.capacitance` for why the implementation
sits in the measures layer).
"""

from __future__ import annotations

from ckptrank.measures._beff_backbone import ModelInput, train_probe_backbone

__all__ = ["ModelInput", "train_probe_backbone"]
