"""Building blocks of the measures for code outside this package (e.g. the SFDA ensemble choice).

Input validation with the measures' own one-line errors, label re-indexing, the PCA projection
the measures share, and the message for an unknown name, under stable public names.
"""

from __future__ import annotations

from ._linalg import class_means, class_sums, pca_project
from ._registry import unknown_name_message
from ._validation import LabelInfo, check_features, check_labels

__all__ = [
    "LabelInfo",
    "check_features",
    "check_labels",
    "class_means",
    "class_sums",
    "pca_project",
    "unknown_name_message",
]
