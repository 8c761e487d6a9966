"""Small architectures of the self-trained checkpoint zoo (28-32 px images, short texts).

Every model exposes ``features(x)`` (the penultimate representation, ``(batch, num_features)``)
and ``head`` (an ``nn.Linear`` on it), and ``forward(x) = head(features(x))``. Image models take
``(batch, 3, H, W)`` normalised tensors of any size (the CNNs pool globally; the MLP first
average-pools to 28 x 28). The text model takes ``input_ids`` and ``attention_mask``.

The widths are deliberately small (0.03-0.25 M parameters) so that the committed safetensors stay
well under a megabyte each and the whole zoo trains in minutes on two CPU cores.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional

__all__ = ["ARCHITECTURES", "BagOfWords", "SmallCNN", "SmallMLP", "SmallResNet", "build_model"]


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (16, 32, 64 channels), max-pooling between, global average pool."""

    def __init__(self, num_classes: int, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stage1 = _conv_bn(3, w1)
        self.stage2 = _conv_bn(w1, w2)
        self.stage3 = _conv_bn(w2, w3)
        self.num_features = w3
        self.head = nn.Linear(w3, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = functional.max_pool2d(self.stage1(x), 2)
        x = functional.max_pool2d(self.stage2(x), 2)
        return self.stage3(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = functional.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return functional.relu(out + self.shortcut(x), inplace=True)


class SmallResNet(nn.Module):
    """A ResNet with a 3x3 stem and one basic block per stage (16, 32, 64 channels)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        self.stem = _conv_bn(3, widths[0])
        blocks = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            blocks.append(_BasicBlock(c_in, width, stride=1 if i == 0 else 2))
            c_in = width
        self.layers = nn.Sequential(*blocks)
        self.num_features = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallMLP(nn.Module):
    """Grey 28 x 28 pixels (channel mean, average-pooled to 28 x 28) -> 256 -> 128, ReLU."""

    def __init__(self, num_classes: int, hidden: tuple[int, int] = (256, 128), side: int = 28) -> None:
        super().__init__()
        self.side = side
        self.fc1 = nn.Linear(side * side, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.num_features = hidden[1]
        self.head = nn.Linear(hidden[1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=1, keepdim=True)
        if x.shape[-2:] != (self.side, self.side):
            x = functional.adaptive_avg_pool2d(x, self.side)
        x = functional.relu(self.fc1(x.flatten(1)), inplace=True)
        return functional.relu(self.fc2(x), inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BagOfWords(nn.Module):
    """Mean of word embeddings (padding masked out) -> Linear -> ReLU: a tiny text encoder."""

    def __init__(self, num_classes: int, vocab_size: int, dim: int = 48, hidden: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.proj = nn.Linear(dim, hidden)
        self.num_features = hidden
        self.head = nn.Linear(hidden, num_classes)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(self.embedding.weight.dtype)
        mean = (self.embedding(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return functional.relu(self.proj(mean))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask))


#: Architecture name -> (class, modality).
ARCHITECTURES: dict[str, tuple[type[nn.Module], str]] = {
    "small-cnn": (SmallCNN, "image"),
    "small-resnet": (SmallResNet, "image"),
    "small-mlp": (SmallMLP, "image"),
    "bag-of-words": (BagOfWords, "text"),
}


def build_model(arch: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Construct architecture ``arch`` with a ``num_classes``-way head (``kwargs`` go to the class).

    Raises
    ------
    ValueError
        Unknown architecture name (the message lists the valid ones).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown zoo architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    cls, _ = ARCHITECTURES[arch]
    return cls(num_classes, **kwargs)
