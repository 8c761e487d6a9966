"""The self-trained checkpoint zoo: small models pre-trained by ckptrank on real source data.

``ckptrank zoo build`` trains every entry of :data:`~ckptrank.zoo.catalog.ZOO` on its source task
(:mod:`ckptrank.zoo.data`: the SOURCE half of Fashion-MNIST, WordNet verb glosses) and saves
safetensors plus a JSON card per checkpoint in ``ckptrank/zoo/checkpoints``. Load them with
``load_checkpoint("zoo:NAME")`` (importing this package registers the ``zoo:`` source).
"""

from __future__ import annotations

from . import loader as _loader  # noqa: F401  # registers the zoo: checkpoint source
from .catalog import ARCH_RANDOM, ZOO, ZooEntry, get_entry, zoo_names
from .pretrain import CHECKPOINT_DIR, build_zoo, pretrain, read_card

__all__ = [
    "ARCH_RANDOM",
    "CHECKPOINT_DIR",
    "ZOO",
    "ZooEntry",
    "build_zoo",
    "get_entry",
    "pretrain",
    "read_card",
    "zoo_names",
]
