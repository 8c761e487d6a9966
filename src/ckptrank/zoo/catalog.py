"""The checkpoints of the self-trained zoo: architecture, source task, training length, seed.

Three kinds of entry:

* **pre-trained** on a real source task (:mod:`ckptrank.zoo.data`): ``cnn-fm04`` (classes 0-4 of
  Fashion-MNIST), ``cnn-fm59`` (classes 5-9), ``resnet-fm04`` and ``mlp-fm04`` (other architectures,
  same source), ``cnn-rot`` (self-supervised rotation prediction), ``bow-wnverb`` (a bag-of-words
  text encoder on WordNet verb supersenses). ``cnn-fm04`` also saves its state after epochs 1 and 3
  of the same run (``cnn-fm04-e1``, ``cnn-fm04-e3``): NeuCRaB's "one architecture, different
  training stages" group.
* **random-initialised controls** saved as files: ``cnn-random``, ``resnet-random``, ``bow-random``.
* **random-initialised controls of the real architectures**, built on the fly from a seed (their
  weights would take tens of megabytes): ``efficientnet-lite0-random``, ``minilm-random``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARCH_RANDOM", "ZOO", "ZooEntry", "get_entry", "zoo_names"]


@dataclass(frozen=True)
class ZooEntry:
    """One training run of the zoo (and the checkpoints it saves).

    Attributes
    ----------
    name : str
        Name of the final checkpoint (``zoo:NAME``).
    arch : str
        Architecture (:data:`ckptrank.zoo.models.ARCHITECTURES`).
    source_task : str or None
        Source task (:func:`ckptrank.zoo.data.load_source_task`); None for a random-initialised
        control, which is saved untrained.
    epochs : int
        Training epochs of the run (0 for random controls).
    stages : tuple of int
        Epochs after which the run also saves ``{name}-e{epoch}``.
    seed : int
        Seed of the initialisation and of the batch order.
    arch_kwargs : dict
        Extra constructor arguments (recorded in the card).
    vocab_from : str or None
        Text models: the source task whose training texts define the vocabulary.
    description : str
    """

    name: str
    arch: str
    source_task: str | None
    epochs: int = 6
    stages: tuple[int, ...] = ()
    seed: int = 0
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    vocab_from: str | None = None
    description: str = ""

    @property
    def outputs(self) -> list[str]:
        """Names of the checkpoints this run saves (stages first, then the final one)."""
        return [f"{self.name}-e{e}" for e in self.stages] + [self.name]


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            "cnn-fm04",
            "small-cnn",
            "fashion-mnist-0-4",
            stages=(1, 3),
            description="small CNN supervised on Fashion-MNIST classes 0-4; stages after epochs 1 and 3",
        ),
        ZooEntry("cnn-fm59", "small-cnn", "fashion-mnist-5-9", description="small CNN on classes 5-9"),
        ZooEntry(
            "resnet-fm04", "small-resnet", "fashion-mnist-0-4", description="small ResNet on classes 0-4"
        ),
        ZooEntry("mlp-fm04", "small-mlp", "fashion-mnist-0-4", description="MLP on classes 0-4"),
        ZooEntry(
            "cnn-rot",
            "small-cnn",
            "fashion-mnist-rotation",
            description="small CNN, self-supervised rotation prediction on all classes (labels unused)",
        ),
        ZooEntry(
            "cnn-random", "small-cnn", None, epochs=0, seed=1, description="random-initialised small CNN"
        ),
        ZooEntry(
            "resnet-random",
            "small-resnet",
            None,
            epochs=0,
            seed=1,
            description="random-initialised small ResNet",
        ),
        ZooEntry(
            "bow-wnverb",
            "bag-of-words",
            "wordnet-verbs",
            epochs=15,
            vocab_from="wordnet-verbs",
            description="bag-of-words text encoder supervised on WordNet verb supersenses",
        ),
        ZooEntry(
            "bow-random",
            "bag-of-words",
            None,
            epochs=0,
            seed=1,
            vocab_from="wordnet-verbs",
            description="random-initialised bag-of-words encoder (vocabulary of the verb glosses)",
        ),
    )
}

#: Random-initialised controls of the real built-in architectures (no file; built from a seed).
ARCH_RANDOM: dict[str, str] = {
    "efficientnet-lite0-random": "EfficientNet-Lite0 architecture, random initialisation (?seed=, default 0)",
    "minilm-random": "all-MiniLM-L6-v2 architecture and tokenizer, random initialisation (?seed=, default 0)",
}


def zoo_names() -> list[str]:
    """Every name ``zoo:NAME`` accepts: saved checkpoints (with stages), then on-the-fly controls."""
    return [n for e in ZOO.values() for n in e.outputs] + list(ARCH_RANDOM)


def get_entry(name: str) -> ZooEntry:
    """The zoo run that saves checkpoint ``name`` (a stage name maps to its run)."""
    for entry in ZOO.values():
        if name in entry.outputs:
            return entry
    raise ValueError(f"unknown zoo checkpoint {name!r}; valid: {', '.join(zoo_names())}")
