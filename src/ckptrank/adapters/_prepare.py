"""Picklable preparers: raw images or texts to one model-input batch.

Images follow torchvision's evaluation pipeline on PIL images: resize (shorter side, or to
a square), centre crop, scale to ``[0, 1]``, normalise per channel. On PIL input the
result equals ``torchvision.transforms`` ``Resize`` + ``CenterCrop`` + ``ToTensor`` +
``Normalize`` exactly (both resize through PIL).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._base import MissingDependencyError, Preprocessing

__all__ = ["ImagePreparer", "TextPreparer", "TokenCount", "check_texts", "count_tokens", "to_rgb_image"]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with torchvision
        raise MissingDependencyError(
            "image checkpoints need the 'pillow' package: pip install pillow"
        ) from None
    return Image


def to_rgb_image(item: Any, index: int = 0) -> Any:
    """A PIL RGB image from a file path, a PIL image, or a uint8 array (H, W), (H, W, 1|3|4)."""
    Image = _pil()
    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as img:
                return img.convert("RGB")
        except FileNotFoundError:
            raise ValueError(f"image item {index}: file not found: {os.fspath(item)!r}") from None
        except OSError as exc:
            raise ValueError(
                f"image item {index}: cannot read {os.fspath(item)!r} as an image ({exc})"
            ) from None
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        if (
            item.dtype != np.uint8
            or item.ndim not in (2, 3)
            or (item.ndim == 3 and item.shape[2] not in (1, 3, 4))
        ):
            raise ValueError(
                f"image item {index} is a {item.dtype} array of shape {item.shape}; pass uint8 arrays of "
                "shape (H, W) or (H, W, 3), PIL images, or image file paths"
            )
        if item.ndim == 3 and item.shape[2] == 1:
            item = item[:, :, 0]
        return Image.fromarray(np.ascontiguousarray(item)).convert("RGB")
    raise ValueError(
        f"image item {index} is a {type(item).__name__}; pass uint8 numpy arrays (H, W) or (H, W, 3), "
        "PIL images, or image file paths"
    )


def check_texts(items: Sequence[Any]) -> list[str]:
    """The items as a list of str; a one-line ValueError names the first non-string item."""
    texts = list(items)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"text item {i} is a {type(text).__name__}, not a str; text checkpoints take strings"
            )
    return texts


@dataclass(frozen=True)
class TokenCount:
    """How many texts a token limit cuts.

    Attributes
    ----------
    n_texts : int
        Texts counted.
    n_over : int
        Texts with more tokens (special tokens included) than ``limit``: their end is cut.
    longest : int or None
        Tokens in the longest text (None: not tokenised, because no text has enough bytes to
        reach the limit).
    limit : int
        The token limit the preparation applies.
    model_limit : int or None
        The most tokens the model itself takes (None: unknown).
    """

    n_texts: int
    n_over: int
    longest: int | None
    limit: int
    model_limit: int | None = None

    def note(self) -> str | None:
        """One line saying how many texts the limit cuts, or None when it cuts none."""
        if self.n_over == 0:
            return None
        said = (
            f"{self.n_over:,} of {self.n_texts:,} texts are longer than the {self.limit}-token limit and "
            f"were cut (the longest has {self.longest:,} tokens)"
        )
        if self.model_limit is not None and self.limit < self.model_limit:
            return (
                f"{said}; the spec option ?max_length=N raises the limit up to the model's {self.model_limit}"
            )
        if self.model_limit is not None:
            return f"{said}; {self.limit} tokens is the most this model takes"
        return said


#: More than any tokenizer adds to a text ([CLS]/[SEP], <s>/</s>, prefixes, prompts).
_MAX_SPECIAL_TOKENS = 16


def count_tokens(
    tokenizer: Any, items: Sequence[Any], limit: int, model_limit: int | None = None, batch_size: int = 1024
) -> TokenCount:
    """Count the texts that a Hugging Face ``tokenizer`` would cut at ``limit`` tokens.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Called on lists of texts without truncation; special tokens are counted, as the
        preparation adds them.
    items : sequence of str, length n_texts
    limit : int
        The token limit of the preparation.
    model_limit : int, optional
        The most tokens the model takes (said in the note).
    batch_size : int
        Texts tokenised per call (bounds memory).

    Returns
    -------
    TokenCount
    """
    texts = check_texts(items)
    # A token covers at least one byte of UTF-8 (WordPiece, BPE and SentencePiece alike), so a text
    # of b bytes has at most b + (special tokens) tokens: when even the longest cannot reach the
    # limit, nothing is tokenised (short-text tasks, and every cached re-rank of them, pay nothing).
    if max((len(text.encode("utf-8")) for text in texts), default=0) + _MAX_SPECIAL_TOKENS <= limit:
        return TokenCount(
            n_texts=len(texts), n_over=0, longest=None, limit=int(limit), model_limit=model_limit
        )
    n_over = 0
    longest = 0
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(texts[start : start + batch_size], truncation=False, verbose=False)["input_ids"]
        lengths = [len(row) for row in ids]
        n_over += sum(length > limit for length in lengths)
        longest = max([longest, *lengths])
    return TokenCount(
        n_texts=len(texts),
        n_over=int(n_over),
        longest=int(longest),
        limit=int(limit),
        model_limit=model_limit,
    )


@dataclass(frozen=True)
class ImagePreparer:
    """Resize, centre-crop and normalise images per a :class:`Preprocessing`.

    ``preprocessing.extra["resize_mode"]`` is ``"shorter"`` (default: the shorter side
    becomes ``resize_size``, aspect ratio kept) or ``"square"`` (both sides become
    ``resize_size``, as Hugging Face ViT processors do).
    """

    preprocessing: Preprocessing

    def __post_init__(self) -> None:
        p = self.preprocessing
        if p.modality != "image" or not p.image_size:
            raise ValueError(f"ImagePreparer needs an image Preprocessing with image_size, got {p}")
        if p.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation {p.interpolation!r} is not one of {', '.join(_INTERPOLATIONS)}")

    def __call__(self, items: Sequence[Any]) -> torch.Tensor:
        items = list(items)
        if not items:
            raise ValueError("prepare() needs at least one item")
        p = self.preprocessing
        size = int(p.image_size)  # type: ignore[arg-type]
        resize = int(p.resize_size or size)
        Image = _pil()
        resample = getattr(Image.Resampling, p.interpolation.upper())
        square = p.extra.get("resize_mode", "shorter") == "square"
        out = np.empty((len(items), size, size, 3), dtype=np.float32)
        for i, item in enumerate(items):
            img = to_rgb_image(item, i)
            w, h = img.size
            if square:
                new_w = new_h = resize
            elif w <= h:
                new_w, new_h = resize, int(resize * h / w)
            else:
                new_w, new_h = int(resize * w / h), resize
            if (new_w, new_h) != (w, h):
                img = img.resize((new_w, new_h), resample)
            left = round((new_w - size) / 2.0)
            top = round((new_h - size) / 2.0)
            if (left, top, new_w, new_h) != (0, 0, size, size):
                img = img.crop((left, top, left + size, top + size))
            out[i] = np.asarray(img, dtype=np.float32)
        x = torch.from_numpy(out).div_(255.0).permute(0, 3, 1, 2)
        mean = torch.tensor(p.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(p.std, dtype=torch.float32).view(1, -1, 1, 1)
        return x.sub(mean).div_(std).contiguous()


@dataclass(frozen=True)
class TextPreparer:
    """Tokenise texts with a Hugging Face tokenizer into a dict of padded tensors."""

    tokenizer: Any
    max_length: int
    model_limit: int | None = None

    def __call__(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        texts = check_texts(items)
        if not texts:
            raise ValueError("prepare() needs at least one item")
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}

    def count_tokens(self, items: Sequence[Any]) -> TokenCount:
        """How many of ``items`` this preparer cuts at :attr:`max_length` (see :func:`count_tokens`)."""
        return count_tokens(self.tokenizer, items, self.max_length, self.model_limit)
