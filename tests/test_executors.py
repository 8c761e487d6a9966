"""Executors: the local one and the Ray one run the same units to the same results.

One Ray instance (2 CPUs and one logical GPU, on 127.0.0.1, no dashboard, 80 MB object store)
is started for the module. ``rank`` on real built-in zoo checkpoints and ``bench`` on a small
synthetic suite give the same tables through either executor; only the timing columns differ.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import numpy as np
import pandas as pd
import pytest
import ray

from ckptrank import ranking, ranking_output
from ckptrank.bench.harness import bench, score_suite
from ckptrank.bench.store import ResultsStore
from ckptrank.bench.suite import Suite, Task
from ckptrank.executors import LocalExecutor, RayExecutor, get_executor, resolve_executor
from ckptrank.testing.synthetic import blobs

TIMING = ["seconds", "extract_seconds", "score_seconds", "from_cache"]
MODELS = ["zoo:cnn-fm04", "zoo:cnn-random", "zoo:mlp-fm04", "zoo:bow-random"]


@pytest.fixture(scope="module")
def ray_executor():
    """A RayExecutor over a Ray instance of this machine, shut down after the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # keep the instance on the loopback address
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        mp.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
        ray.init(
            num_cpus=2,
            num_gpus=1,  # a logical GPU: lets the tests see what a GPU task reserves
            include_dashboard=False,
            object_store_memory=80 * 1024**2,
            log_to_driver=False,
        )
        # the functions below travel by value: the workers cannot import this test module
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            assert ray.util.get_node_ip_address() == "127.0.0.1"
            yield RayExecutor(max_retries=1)
        finally:
            ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
            ray.shutdown()


def _slow_square(x: int) -> int:
    time.sleep(0.05 * (5 - x))  # the first items finish last
    return x * x


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def _assigned(_: int) -> dict[str, float]:
    return dict(ray.get_runtime_context().get_assigned_resources())


def test_map_keeps_the_order_of_the_items(ray_executor):
    items = list(range(6))
    expected = [x * x for x in items]
    assert LocalExecutor().map(_slow_square, items) == expected
    assert ray_executor.map(_slow_square, items) == expected
    assert list(ray_executor.imap(_slow_square, items)) == expected
    assert ray_executor.map(functools.partial(pow, exp=3), items) == [x**3 for x in items]


def test_a_unit_error_is_raised_as_itself(ray_executor):
    for executor in (LocalExecutor(), ray_executor):
        with pytest.raises(ValueError, match="bad item 3"):
            executor.map(_fails_on_three, range(5))


def test_tasks_reserve_a_gpu_only_when_asked(ray_executor):
    assert ray_executor.map(_assigned, [0]) == [{"CPU": 1.0}]
    assert ray_executor.map(_assigned, [0], gpu=True) == [{"CPU": 1.0, "GPU": 1.0}]


def test_executor_names_and_errors(monkeypatch):
    assert isinstance(get_executor("local"), LocalExecutor)
    assert resolve_executor(None)[1] and not resolve_executor(LocalExecutor())[1]
    with pytest.raises(ValueError, match="unknown executor 'dask'; choose one of: local, ray"):
        get_executor("dask")
    with pytest.raises(ValueError, match="pass --executor ray"):
        get_executor("local", address="127.0.0.1:6379")
    with pytest.raises(TypeError, match="executor must be 'local', 'ray'"):
        ranking.rank("builtin:digits", MODELS[:1], executor=42)
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"pip install 'ckptrank\[ray\]'"):
        get_executor("ray")


def test_a_cuda_run_on_a_cluster_without_gpus_is_one_clear_error(monkeypatch):
    executor = RayExecutor()
    fake = type("FakeRay", (), {"cluster_resources": staticmethod(lambda: {"CPU": 2.0})})
    with pytest.raises(ValueError, match="the Ray cluster has 0 GPUs"):
        executor._options(fake, gpu=True)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in ranking_output.ranking_records(frame)]


def test_rank_gives_the_same_ranking_through_ray(ray_executor, tmp_path):
    kwargs = dict(per_class=10, measures="logme,leep,nleep")
    local = ranking.rank("builtin:digits", MODELS, cache_dir=tmp_path / "a", executor="local", **kwargs)
    remote = ranking.rank("builtin:digits", MODELS, cache_dir=tmp_path / "b", executor=ray_executor, **kwargs)
    assert remote["from_cache"].tolist() == [False, False, False, None]  # the workers extracted
    assert remote.loc[remote["checkpoint"] == "zoo:bow-random", "status"].item() == "failed"
    pd.testing.assert_frame_equal(local.drop(columns=TIMING), remote.drop(columns=TIMING))
    for key in ("notes", "checkpoint_notes", "measure_ranks", "dataset", "ranker"):
        assert local.attrs[key] == remote.attrs[key], key
    assert _records(local) == _records(remote)
    csv = [ranking_output.csv_frame(f).drop(columns="seconds").to_csv(index=False) for f in (local, remote)]
    assert csv[0] == csv[1]
    # the features the workers wrote are the driver's cache hits
    again = ranking.rank("builtin:digits", MODELS, cache_dir=tmp_path / "b", **kwargs)
    assert again["from_cache"].tolist() == [True, True, True, None]
    pd.testing.assert_frame_equal(local.drop(columns=TIMING), again.drop(columns=TIMING))


def test_rank_on_error_raise_raises_the_same_error_through_ray(ray_executor, tmp_path):
    errors = []
    for executor in ("local", ray_executor):
        with pytest.raises(Exception) as caught:
            ranking.rank(
                "builtin:digits", ["zoo:bow-random"], per_class=5, on_error="raise", executor=executor
            )
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]


@pytest.fixture
def feature_suite(tmp_path):
    """Precomputed features per (checkpoint, task): class separation grows with checkpoint quality."""
    separation = {"weak": 0.2, "mid": 0.8, "strong": 1.6, "best": 3.0}
    classes = {"alpha": 3, "beta": 4}
    rng = np.random.default_rng(0)
    truth = []
    for task, n_classes in classes.items():
        for i, (name, sep) in enumerate(separation.items()):
            X, y = blobs(60, 8, n_classes, sep, random_state=10 * i + n_classes)
            np.savez(tmp_path / f"{name}-{task}.npz", features=X, labels=y, split=np.full(y.size, "train"))
            truth += [(task, name, s, 50 + 10 * sep + rng.standard_normal()) for s in range(2)]
    return Suite(
        name="test:executors",
        tasks={task: Task(data=str(tmp_path / f"{{checkpoint}}-{task}.npz")) for task in classes},
        checkpoints=list(separation),
        ground_truth=pd.DataFrame(truth, columns=["task", "checkpoint", "seed", "accuracy"]),
        baselines=pd.DataFrame({"num_parameters": [4.0, 1.0, 3.0, 2.0]}, index=list(separation)),
    )


def test_bench_gives_the_same_evaluation_through_ray(ray_executor, feature_suite, tmp_path):
    results = {}
    for name, executor in (("local", None), ("ray", ray_executor)):
        db = tmp_path / f"{name}.sqlite"
        messages: list[str] = []
        result = bench(
            feature_suite, measures="logme,sfda", store=db, n_bootstrap=100, executor=executor,
            on_progress=messages.append,
        )  # fmt: skip
        with ResultsStore(db) as store:
            stored = store.table("scores", suite=feature_suite.name)
        results[name] = (result, stored, messages)
    (local, local_rows, local_msgs), (remote, remote_rows, remote_msgs) = results["local"], results["ray"]
    assert local_msgs == remote_msgs and len(remote_msgs) == 8
    summaries = [r.evaluation.summary for r in (local, remote)]
    timing = [c for c in summaries[0].columns if "seconds" in c]
    assert timing and summaries[0]["weighted_tau"].notna().all()
    pd.testing.assert_frame_equal(summaries[0].drop(columns=timing), summaries[1].drop(columns=timing))
    per_task = [r.evaluation.per_task for r in (local, remote)]
    per_task = [t[~t["statistic"].str.contains("seconds")].reset_index(drop=True) for t in per_task]
    pd.testing.assert_frame_equal(per_task[0], per_task[1])
    pd.testing.assert_frame_equal(local.scores.drop(columns="seconds"), remote.scores.drop(columns="seconds"))
    assert local.notes == remote.notes
    keys = ["task", "checkpoint", "measure", "options"]
    assert not remote_rows.duplicated(keys).any() and len(remote_rows) == len(local_rows)
    assert set(remote_rows["measure"]) >= {"logme", "sfda"}
    pd.testing.assert_frame_equal(
        local_rows.drop(columns=["seconds", "created"]), remote_rows.drop(columns=["seconds", "created"])
    )
    # a re-run through Ray finds every score in the store: no unit runs
    again = score_suite(feature_suite, "logme,sfda", store=tmp_path / "ray.sqlite", executor=ray_executor)
    assert again.runs.empty


def test_ray_units_run_in_other_processes(ray_executor):
    pids = ray_executor.map(functools.partial(_pid_of, "x"), range(2))
    assert os.getpid() not in pids


def _pid_of(_: str, __: int) -> int:
    return os.getpid()


def test_other_ray_failures_are_one_line():
    """Ray errors that are neither a unit's exception nor a lost worker (out of memory, cancelled, object
    store full) end as one line naming the unit, not a traceback."""
    from ray import exceptions

    class FailingRay:
        def get(self, ref):
            raise exceptions.OutOfMemoryError("Task was killed: the node ran low on memory.\nDetails.")

    executor = RayExecutor.__new__(RayExecutor)  # no cluster: only the result handling is exercised
    executor.max_retries = 0
    with pytest.raises(RuntimeError, match=r"^unit 1 of 2 failed on Ray \(OutOfMemoryError: Details\.\)$"):
        list(executor._results(FailingRay(), [object(), object()], 2))
