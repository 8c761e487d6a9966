"""Unit tests of the input validators in ``ckptrank.measures._validation``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

from ckptrank.measures._validation import (
    DegenerateInputWarning,
    LabelInfo,
    check_features,
    check_features_and_labels,
    check_labels,
    check_random_state,
    check_source_probs,
    to_numpy,
    warn_degenerate,
    warn_small_classes,
)

# ----------------------------------------------------------------------------------------------
# to_numpy
# ----------------------------------------------------------------------------------------------


def test_to_numpy_rejects_none() -> None:
    with pytest.raises(ValueError, match="features is None"):
        to_numpy(None, name="features")


def test_to_numpy_passes_arrays_through_without_copy() -> None:
    a = np.arange(6.0).reshape(3, 2)
    assert to_numpy(a, name="x") is a
    np.testing.assert_array_equal(to_numpy([[1, 2], [3, 4]], name="x"), [[1, 2], [3, 4]])


def test_to_numpy_detaches_torch_tensors() -> None:
    t = torch.arange(6, dtype=torch.float64).reshape(3, 2).requires_grad_(True)
    out = to_numpy(t, name="x")
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.arange(6.0).reshape(3, 2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_to_numpy_upcasts_half_precision_tensors(dtype: torch.dtype) -> None:
    t = torch.tensor([[0.5, -1.25], [3.0, 1024.0]], dtype=dtype)
    out = to_numpy(t, name="x")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.5, -1.25], [3.0, 1024.0]])


def test_to_numpy_keeps_integer_tensors() -> None:
    out = to_numpy(torch.tensor([3, 1, 2]), name="labels")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [3, 1, 2])


def test_to_numpy_rejects_ragged_lists() -> None:
    with pytest.raises(ValueError, match="features could not be converted to an array"):
        to_numpy([[1.0, 2.0], [3.0]], name="features")


# ----------------------------------------------------------------------------------------------
# check_features
# ----------------------------------------------------------------------------------------------


def test_check_features_returns_a_float64_c_contiguous_copy() -> None:
    X = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    before = X.copy()
    out = check_features(X)
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    assert not np.shares_memory(out, X)
    np.testing.assert_array_equal(out, before)
    out[0, 0] = 99.0
    np.testing.assert_array_equal(X, before)


def test_check_features_copies_float64_input() -> None:
    X = np.ones((3, 2))
    out = check_features(X)
    assert out is not X
    assert not np.shares_memory(out, X)


def test_check_features_accepts_read_only_arrays() -> None:
    X = np.arange(6.0).reshape(3, 2)
    X.flags.writeable = False
    out = check_features(X)
    assert out.flags.writeable
    np.testing.assert_array_equal(out, X)


def test_check_features_float32_conversion_is_exact() -> None:
    X32 = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(check_features(X32), X32.astype(np.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_check_features_accepts_torch_tensors(dtype: torch.dtype) -> None:
    values = [[1.0, 2.5], [-0.5, 4.0], [8.0, 0.25]]
    out = check_features(torch.tensor(values, dtype=dtype))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, values)


def test_check_features_does_not_touch_torch_input() -> None:
    t = torch.ones(3, 2)
    out = check_features(t)
    out[:] = 5.0
    assert torch.equal(t, torch.ones(3, 2))


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, bool])
def test_check_features_accepts_integer_and_bool(dtype: Any) -> None:
    out = check_features(np.array([[1, 0], [0, 1], [1, 1]], dtype=dtype))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1, 0], [0, 1], [1, 1]])


def test_check_features_reads_1d_as_one_column() -> None:
    out = check_features([1.0, 2.0, 3.0])
    assert out.shape == (3, 1)


def test_check_features_rejects_3d_with_the_shape() -> None:
    with pytest.raises(ValueError, match=r"must be 2-D \(n_samples, n_features\), got shape \(4, 3, 2\)"):
        check_features(np.zeros((4, 3, 2)))


def test_check_features_rejects_0d() -> None:
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        check_features(np.float64(1.0))


def test_check_features_rejects_object_dtype() -> None:
    X = np.empty((2, 2), dtype=object)
    X[:] = 1.0
    with pytest.raises(ValueError, match="must be numeric, got dtype object"):
        check_features(X)


def test_check_features_rejects_strings() -> None:
    with pytest.raises(ValueError, match="must be numeric, got dtype <U1"):
        check_features(np.array([["a", "b"], ["c", "d"]]))


def test_check_features_rejects_complex() -> None:
    with pytest.raises(ValueError, match="features is complex"):
        check_features(np.ones((3, 2), dtype=np.complex128))


def test_check_features_rejects_complex_tensors() -> None:
    with pytest.raises(ValueError, match="complex"):
        check_features(torch.ones(3, 2, dtype=torch.complex64))


def test_check_features_rejects_too_few_rows() -> None:
    with pytest.raises(ValueError, match="features has 1 rows; at least 2 samples"):
        check_features(np.ones((1, 4)))
    with pytest.raises(ValueError, match="has 3 rows; at least 5 samples"):
        check_features(np.ones((3, 4)), min_samples=5)


def test_check_features_rejects_zero_columns() -> None:
    with pytest.raises(ValueError, match="features has 3 rows but 0 columns"):
        check_features(np.ones((3, 0)))


def test_check_features_counts_nan_and_inf() -> None:
    X = np.zeros((6, 3))
    X[1, 0] = np.nan
    X[1, 2] = np.nan
    X[4, 1] = np.inf
    X[5, 1] = -np.inf
    with pytest.raises(
        ValueError,
        match=r"features contains 2 NaN and 2 infinite values in 3 of 6 rows \(first bad row: 1\)",
    ):
        check_features(X)


def test_check_features_uses_the_given_name() -> None:
    with pytest.raises(ValueError, match=r"^embeddings contains 1 NaN"):
        check_features(np.array([[np.nan], [1.0]]), name="embeddings")


def test_check_features_rejects_nan_in_torch_tensors() -> None:
    with pytest.raises(ValueError, match="1 NaN"):
        check_features(torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=torch.bfloat16))


# ----------------------------------------------------------------------------------------------
# check_labels and LabelInfo
# ----------------------------------------------------------------------------------------------


def test_check_labels_reindexes_gappy_ints() -> None:
    info = check_labels([42, 3, 7, 3, 42, 7])
    np.testing.assert_array_equal(info.y, [2, 0, 1, 0, 2, 1])
    np.testing.assert_array_equal(info.classes, [3, 7, 42])
    np.testing.assert_array_equal(info.counts, [2, 2, 2])
    assert info.y.dtype == np.int64
    assert info.counts.dtype == np.int64
    np.testing.assert_array_equal(info.classes[info.y], [42, 3, 7, 3, 42, 7])


def test_check_labels_sorts_strings() -> None:
    info = check_labels(np.array(["dog", "cat", "dog", "ant"]))
    np.testing.assert_array_equal(info.classes, ["ant", "cat", "dog"])
    np.testing.assert_array_equal(info.y, [2, 1, 2, 0])


def test_check_labels_accepts_lists_floats_bools_and_tensors() -> None:
    np.testing.assert_array_equal(check_labels(["b", "a", "b"]).y, [1, 0, 1])
    np.testing.assert_array_equal(check_labels([0.5, -1.0, 0.5]).y, [1, 0, 1])
    np.testing.assert_array_equal(check_labels(np.array([True, False, True])).y, [1, 0, 1])
    np.testing.assert_array_equal(check_labels(torch.tensor([5, 2, 5])).y, [1, 0, 1])


def test_check_labels_accepts_a_column_vector() -> None:
    info = check_labels(np.array([[1], [0], [1], [0]]))
    np.testing.assert_array_equal(info.y, [1, 0, 1, 0])


def test_check_labels_rejects_multi_label() -> None:
    with pytest.raises(ValueError, match=r"must be 1-D \(n_samples,\), got shape \(4, 3\); multi-label"):
        check_labels(np.eye(3)[[0, 1, 2, 0]])


def test_check_labels_rejects_0d() -> None:
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        check_labels(np.int64(3))


def test_check_labels_length_mismatch_names_both_numbers() -> None:
    with pytest.raises(ValueError, match="features has 5 rows but labels has 4"):
        check_labels([0, 1, 0, 1], n_samples=5)


def test_check_labels_rejects_nan() -> None:
    with pytest.raises(ValueError, match="labels contains 2 NaN values"):
        check_labels(np.array([0.0, np.nan, 1.0, np.nan, 1.0]))


def test_check_labels_rejects_nan_in_float_tensor() -> None:
    with pytest.raises(ValueError, match="1 NaN"):
        check_labels(torch.tensor([0.0, 1.0, float("nan"), 1.0]))


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_check_labels_rejects_missing_objects(missing: Any) -> None:
    labels = np.array(["a", "b", missing, "a", missing], dtype=object)
    with pytest.raises(ValueError, match=r"labels contains 2 missing values \(first at row 2\)"):
        check_labels(labels)


def test_check_labels_rejects_none_in_a_list() -> None:
    with pytest.raises(ValueError, match="1 missing values"):
        check_labels(["a", None, "b", "a"])


def test_check_labels_orders_mixed_unorderable_labels_by_first_appearance() -> None:
    labels = np.array([1, "a", 1, (2, 3), "a"], dtype=object)
    info = check_labels(labels)
    np.testing.assert_array_equal(info.y, [0, 1, 0, 2, 1])
    assert info.classes.tolist() == [1, "a", (2, 3)]
    np.testing.assert_array_equal(info.counts, [2, 2, 1])
    assert info.classes.dtype == object


def test_check_labels_rejects_a_single_class() -> None:
    with pytest.raises(
        ValueError, match=r"has 1 distinct class \(every label is 'x'\); .*at least 2 classes"
    ):
        check_labels(["x", "x", "x"])


def test_check_labels_rejects_empty_labels() -> None:
    with pytest.raises(ValueError, match="has 0 distinct class;"):
        check_labels(np.array([], dtype=np.int64))


def test_check_labels_rejects_all_singletons_with_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"every one of the 4 classes .* single sample \(4 samples\)"):
        check_labels([3, 1, 2, 0])


def test_check_labels_allows_one_singleton_among_others() -> None:
    info = check_labels([0, 0, 1, 1, 2])
    np.testing.assert_array_equal(info.counts, [2, 2, 1])


def test_check_labels_uses_the_given_name() -> None:
    with pytest.raises(ValueError, match=r"^targets has 1 distinct class"):
        check_labels([1, 1], name="targets")


def test_label_info_properties() -> None:
    info = check_labels(["b", "a", "b", "b"])
    assert isinstance(info, LabelInfo)
    assert info.n_samples == 4
    assert info.n_classes == 2
    np.testing.assert_allclose(info.priors, [0.25, 0.75])
    np.testing.assert_array_equal(info.one_hot(), [[0, 1], [1, 0], [0, 1], [0, 1]])
    assert info.one_hot().dtype == np.float64
    assert info.entropy() == pytest.approx(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)), rel=1e-15)
    assert check_labels([0, 1, 0, 1]).entropy() == pytest.approx(np.log(2), rel=1e-15)


def test_check_labels_does_not_mutate_input() -> None:
    labels = np.array([5, 3, 5, 3])
    check_labels(labels)
    np.testing.assert_array_equal(labels, [5, 3, 5, 3])


# ----------------------------------------------------------------------------------------------
# check_features_and_labels
# ----------------------------------------------------------------------------------------------


def test_check_features_and_labels() -> None:
    X, info = check_features_and_labels(np.ones((4, 2), dtype=np.float32), ["a", "b", "a", "b"])
    assert X.dtype == np.float64
    assert X.shape == (4, 2)
    np.testing.assert_array_equal(info.y, [0, 1, 0, 1])


def test_check_features_and_labels_length_mismatch() -> None:
    with pytest.raises(ValueError, match="features has 6 rows but labels has 5"):
        check_features_and_labels(np.ones((6, 2)), [0, 1, 0, 1, 0])


def test_check_features_and_labels_checks_features_first() -> None:
    with pytest.raises(ValueError, match="NaN"):
        check_features_and_labels(np.full((3, 2), np.nan), [0])


# ----------------------------------------------------------------------------------------------
# check_source_probs
# ----------------------------------------------------------------------------------------------


def test_check_source_probs_renormalises_within_tolerance() -> None:
    P = np.array([[0.5, 0.5004], [0.2, 0.8]])
    out = check_source_probs(P)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out[0], [0.5 / 1.0004, 0.5004 / 1.0004])
    assert not np.shares_memory(out, P)
    np.testing.assert_array_equal(P, [[0.5, 0.5004], [0.2, 0.8]])


def test_check_source_probs_accepts_float32_tensors() -> None:
    out = check_source_probs(torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), 1))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-15)


@pytest.mark.parametrize(
    "to_half",
    [
        lambda P: P.to(torch.bfloat16),
        lambda P: P.to(torch.float16),
        lambda P: P.numpy().astype(np.float16),
    ],
    ids=["torch-bfloat16", "torch-float16", "numpy-float16"],
)
def test_check_source_probs_accepts_half_precision_softmax(to_half) -> None:
    logits = torch.randn(500, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    P = to_half(torch.softmax(logits, 1))
    values = np.asarray(torch.as_tensor(P).double())
    out = check_source_probs(P)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, values / values.sum(axis=1, keepdims=True), rtol=1e-15, atol=0)


def test_check_source_probs_half_precision_tolerance() -> None:
    P = torch.softmax(torch.randn(500, 10, generator=torch.Generator().manual_seed(0)), 1).to(torch.bfloat16)
    deviation = (P.double().sum(1) - 1.0).abs()
    assert 1e-3 < deviation.max() <= 2.0**-8  # beyond the float tolerance, within bfloat16 rounding
    with pytest.raises(
        ValueError, match=r"rows of source_probs do not sum to 1 .*pass the half-precision tensor"
    ):
        check_source_probs(P.float())  # the bfloat16 values upcast: float32 tolerance
    # half precision still rejects unnormalised rows and logits
    with pytest.raises(ValueError, match=r"sums to 0\.49.*softmax probabilities"):
        check_source_probs((0.5 * P.float()).to(torch.bfloat16))
    with pytest.raises(ValueError, match="negative entries"):
        check_source_probs(torch.randn(5, 3).to(torch.bfloat16))
    bumped = P.clone()
    bumped[0, 0] += 0.02  # a row sum off by about 0.02 > 2**-7
    with pytest.raises(ValueError, match=r"1 rows of source_probs do not sum to 1 \(row 0"):
        check_source_probs(bumped)


def test_check_source_probs_rejects_rows_not_summing_to_one() -> None:
    P = np.array([[0.2, 0.8], [0.3, 0.3], [0.5, 0.5], [1.0, 1.0]])
    with pytest.raises(
        ValueError, match=r"2 rows of source_probs do not sum to 1 \(row 1 sums to 0\.6\).*softmax"
    ):
        check_source_probs(P)


def test_check_source_probs_tolerance_is_configurable() -> None:
    P = np.array([[0.5, 0.51], [0.2, 0.8]])
    with pytest.raises(ValueError, match=r"sums to 1\.01"):
        check_source_probs(P)
    np.testing.assert_allclose(check_source_probs(P, atol=0.02).sum(axis=1), 1.0)


def test_check_source_probs_rejects_negative_entries() -> None:
    P = np.array([[1.2, -0.2], [-0.5, 1.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"2 negative entries \(min -0\.5\); pass softmax probabilities"):
        check_source_probs(P)


def test_check_source_probs_rejects_logits() -> None:
    logits = np.log(np.array([[0.2, 0.8], [0.6, 0.4]]))
    with pytest.raises(ValueError, match="not logits"):
        check_source_probs(logits)


def test_check_source_probs_rejects_a_single_column() -> None:
    with pytest.raises(ValueError, match="source_probs has 1 column; a source head has at least 2 classes"):
        check_source_probs(np.ones((4, 1)))
    with pytest.raises(ValueError, match="has 1 column"):
        check_source_probs(np.ones(4))  # 1-D is read as one column


def test_check_source_probs_row_mismatch_names_both_numbers() -> None:
    with pytest.raises(ValueError, match="source_probs has 3 rows but labels has 4"):
        check_source_probs(np.full((3, 2), 0.5), n_samples=4)


def test_check_source_probs_accepts_a_single_row() -> None:
    np.testing.assert_array_equal(check_source_probs([[0.25, 0.75]]), [[0.25, 0.75]])


def test_check_source_probs_rejects_nan_and_3d() -> None:
    with pytest.raises(ValueError, match="source_probs contains 1 NaN"):
        check_source_probs(np.array([[0.5, np.nan], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="2-D"):
        check_source_probs(np.full((2, 2, 2), 0.5))


# ----------------------------------------------------------------------------------------------
# check_random_state
# ----------------------------------------------------------------------------------------------


def test_check_random_state() -> None:
    expected = np.random.default_rng(0).random(3)
    np.testing.assert_array_equal(check_random_state(None).random(3), expected)
    np.testing.assert_array_equal(check_random_state(0).random(3), expected)
    np.testing.assert_array_equal(
        check_random_state(np.int32(7)).random(3), np.random.default_rng(7).random(3)
    )
    gen = np.random.default_rng(3)
    assert check_random_state(gen) is gen


@pytest.mark.parametrize("bad", [1.5, "0", np.random.RandomState(0)])
def test_check_random_state_rejects_other_types(bad: Any) -> None:
    with pytest.raises(
        ValueError, match=f"random_state must be an int, None or a numpy Generator, got {type(bad).__name__}"
    ):
        check_random_state(bad)


# ----------------------------------------------------------------------------------------------
# Warnings
# ----------------------------------------------------------------------------------------------


def _measure_that_warns() -> None:
    warn_degenerate("weak input")


def test_warn_degenerate_points_at_the_caller_of_the_measure() -> None:
    with pytest.warns(DegenerateInputWarning, match="^weak input$") as record:
        _measure_that_warns()
    assert record[0].filename == __file__


def test_degenerate_input_warning_is_a_user_warning() -> None:
    assert issubclass(DegenerateInputWarning, UserWarning)
    assert not issubclass(DegenerateInputWarning, RuntimeWarning)


def _measure_with_small_classes(labels: Any, min_count: int = 2) -> None:
    warn_small_classes(check_labels(labels), "toy", min_count=min_count)


def test_warn_small_classes_names_the_classes() -> None:
    with pytest.warns(
        DegenerateInputWarning, match=r"toy: 1 of 3 classes have fewer than 2 samples \('c'\)"
    ) as rec:
        _measure_with_small_classes(["a", "a", "b", "b", "c"])
    assert rec[0].filename == __file__


def test_warn_small_classes_truncates_long_lists() -> None:
    labels = [0, 0, *range(1, 8)]
    with pytest.warns(DegenerateInputWarning, match=r"7 of 8 classes .*\(1, 2, 3, 4, 5 and 2 more\)"):
        _measure_with_small_classes(labels)


def test_warn_small_classes_respects_min_count() -> None:
    with pytest.warns(DegenerateInputWarning, match="2 of 2 classes have fewer than 3 samples"):
        _measure_with_small_classes([0, 0, 1, 1], min_count=3)


def test_warn_small_classes_is_silent_when_every_class_is_large_enough() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _measure_with_small_classes([0, 0, 1, 1])
