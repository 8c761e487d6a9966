"""Fault tolerance on a real Ray cluster: a worker killed mid-task loses nothing and duplicates nothing.

The module starts a real local cluster (``ray.cluster_utils.Cluster``: a GCS, a head raylet with
2 CPUs and a second raylet with 1 CPU, each with its own worker processes) on 127.0.0.1 only, with
no dashboard and an 80 MB object store per node, and shuts it down afterwards. One of the
checkpoints is a ``py:`` network whose forward pass kills its own worker process (``os._exit``)
part-way through its first extraction; Ray runs the task again (``max_retries``) and the retry
finishes. The checks: the task ran twice, the second time resuming from the partial shard the
first wrote; the feature cache holds exactly one verified entry per (checkpoint, dataset) and no
partial leftovers; the results store holds each score exactly once; and the results equal those
of the local executor.
"""

from __future__ import annotations

import json
import os
import textwrap

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from ckptrank import ranking
from ckptrank.bench.harness import score_suite
from ckptrank.bench.store import ResultsStore
from ckptrank.bench.suite import Suite, Task
from ckptrank.engine.cache import FeatureCache
from ckptrank.executors import RayExecutor

TIMING = ["seconds", "extract_seconds", "score_seconds", "from_cache"]
MB = 1024**2
BATCH = 4  # 100 samples: 25 batches; the extraction writes a partial shard every 16 batches
KILL_AT_BATCH = 20  # forward calls: after the first shard (64 rows), before the end

MODULE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import torch
    from torch import nn

    LOG = Path({log!r})

    class Net(nn.Module):
        preprocessing = {{"modality": "image", "image_size": 16, "resize_size": 16}}

        def __init__(self, width, seed, kill_at=None):
            super().__init__()
            torch.manual_seed(seed)
            layers = [nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(4 * width, 5)
            self.kill_at = kill_at
            self.batches = 0
            if kill_at is not None:
                with LOG.open("a") as f:
                    f.write(f"load {{os.getpid()}}\\n")
                self.attempt = LOG.read_text().count("load ")

        def forward(self, x):
            if self.kill_at is not None:
                self.batches += 1
                with LOG.open("a") as f:
                    f.write(f"batch {{self.attempt}}\\n")
                if self.attempt == 1 and self.batches == self.kill_at:
                    os._exit(1)  # the worker process dies mid-extraction, like a killed node
            return self.head(self.body(x))

    def small():
        return Net(2, 0)

    def large():
        return Net(8, 2)

    def victim():
        return Net(4, 1, kill_at={kill_at})
    """
)


@pytest.fixture(scope="module")
def cluster():
    """A two-node Ray cluster on 127.0.0.1; the driver joins it through the RayExecutor."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # keep every node (and the driver's view of "localhost") on the loopback address
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        mp.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
        nodes = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 2, "include_dashboard": False, "object_store_memory": 80 * MB},
        )
        try:
            nodes.add_node(num_cpus=1, object_store_memory=80 * MB)
            nodes.wait_for_nodes()
            assert nodes.address.startswith("127.0.0.1:")
            yield nodes
        finally:
            if ray.is_initialized():
                ray.shutdown()
            nodes.shutdown()


def _nets(tmp_path) -> tuple[dict[str, str], object]:
    log = tmp_path / "victim.log"
    path = tmp_path / "nets.py"
    path.write_text(MODULE.format(log=str(log), kill_at=KILL_AT_BATCH))
    return {name: f"py:{path}:{name}" for name in ("small", "victim", "large")}, log


def _attempts(log) -> list[int]:
    """Batches run by each attempt of the victim's task."""
    text = log.read_text().split()
    loads = text.count("load")
    return [
        sum(1 for i, w in enumerate(text) if w == "batch" and text[i + 1] == str(a))
        for a in range(1, loads + 1)
    ]


def _check_cache(root, specs) -> None:
    """Exactly one complete, verified entry per checkpoint (one dataset), no partial shards left."""
    cache = FeatureCache(root)
    entries = cache.ls()
    assert sorted(e.checkpoint for e in entries) == sorted(specs)
    assert all(result.ok for result in cache.verify())
    assert not any((root / "partial").glob("*/*.npz"))
    assert len(list((root / "features").glob("*.npz"))) == len(specs)


def test_rank_survives_a_killed_worker(cluster, tmp_path):
    nets, log = _nets(tmp_path)
    specs = list(nets.values())
    cache = tmp_path / "cache"
    with RayExecutor(cluster.address, max_retries=2) as executor:
        remote = ranking.rank(
            "builtin:digits", specs, per_class=10, batch_size=BATCH, measures="logme,leep",
            cache_dir=cache, executor=executor,
        )  # fmt: skip
    assert len(_attempts(log)) == 2  # the task ran twice: killed once, retried once
    assert (remote["status"] == "ok").all() and remote[["logme", "leep"]].notna().all().all()
    _check_cache(cache, specs)
    local = ranking.rank(
        "builtin:digits", specs, per_class=10, batch_size=BATCH, measures="logme,leep",
        cache_dir=tmp_path / "local-cache",
    )  # fmt: skip
    killed, retried, whole = _attempts(log)  # the local run extracted the victim once, whole
    # the retry resumed from the partial shard the killed attempt wrote (16 batches of rows)
    assert killed == KILL_AT_BATCH and retried == whole - 16
    pd.testing.assert_frame_equal(local.drop(columns=TIMING), remote.drop(columns=TIMING))
    assert local.attrs["checkpoint_notes"] == remote.attrs["checkpoint_notes"]


def test_bench_survives_a_killed_worker_without_duplicate_rows(cluster, tmp_path):
    nets, log = _nets(tmp_path)
    truth = pd.DataFrame(
        [("digits", name, seed, 60.0 + i + seed) for i, name in enumerate(nets) for seed in range(2)],
        columns=["task", "checkpoint", "seed", "accuracy"],
    )
    suite = Suite(
        name="test:ray-cluster",
        tasks={"digits": Task(data="builtin:digits", per_class=10, seed=0)},
        checkpoints=nets,
        ground_truth=truth,
    )
    db, cache = tmp_path / "results.sqlite", tmp_path / "cache"
    with RayExecutor(cluster.address, max_retries=2) as executor:
        scored = score_suite(
            suite, "logme,leep", store=db, cache_dir=cache, batch_size=BATCH, executor=executor
        )
        assert len(_attempts(log)) == 2 and scored.runs["status"].eq("ok").all()
        # nothing was lost: a second run finds every score and baseline in the store
        assert score_suite(suite, "logme,leep", store=db, cache_dir=cache, executor=executor).runs.empty
    _check_cache(cache, list(nets.values()))
    with ResultsStore(db) as store:
        rows = store.table("scores", suite=suite.name)
    keys = ["task", "checkpoint", "measure", "options"]
    assert not rows.duplicated(keys).any()
    assert len(rows) == 3 * 2 + 3 * 2  # 3 checkpoints x (2 measures + 2 baselines)
    assert rows.loc[rows["task"] == "digits", "value"].notna().all()
    assert len(_attempts(log)) == 2  # the second run loaded nothing
    local = score_suite(suite, "logme,leep", store=":memory:", cache_dir=tmp_path / "local-cache")
    pd.testing.assert_frame_equal(
        local.scores.drop(columns="seconds"), scored.scores.drop(columns="seconds"), check_exact=True
    )
    assert json.dumps(local.baselines.to_dict()) == json.dumps(scored.baselines.to_dict())


def test_a_unit_that_always_kills_its_worker_is_one_clear_error(cluster):
    with RayExecutor(cluster.address, max_retries=1) as executor:
        assert executor.map(abs, [-1, 2]) == [1, 2]
        with pytest.raises(RuntimeError, match=r"unit 1 of 1 was lost: its Ray worker died 2 time\(s\)"):
            executor.map(os._exit, [1])  # the exit status 1


def _finetune_nets(tmp_path, kill_at: int) -> tuple[dict[str, str], object]:
    log = tmp_path / "victim-ft.log"
    path = tmp_path / "ft_nets.py"
    path.write_text(MODULE.format(log=str(log), kill_at=kill_at))
    return {name: f"py:{path}:{name}" for name in ("small", "victim")}, log


def test_finetune_grid_survives_a_killed_worker(cluster, tmp_path):
    """A small fine-tuning grid on Ray: the job whose worker dies is retried, every run is recorded
    once, and the accuracies equal those of the local executor."""
    import torch

    from ckptrank.bench.finetune import FinetuneConfig, finetune, load_task

    nets, log = _finetune_nets(tmp_path, kill_at=3)  # the third forward pass of the victim's first job
    task = load_task("builtin:digits", per_class=6, test_per_class=3, seed=0)
    config = FinetuneConfig(
        protocol="full", lrs=(0.01, 0.1), weight_decays=(0.0,), epochs=1, batch_size=16, seeds=(0, 1),
        probe_epochs=2,
    )  # fmt: skip
    with ResultsStore(tmp_path / "ray.sqlite") as store:
        with RayExecutor(cluster.address, max_retries=2) as executor:
            remote = finetune(nets, [task], config, store, executor=executor)
        runs = store.table("finetune_runs")
    # the victim's jobs: 2 grid points + 1 more seed, and the first one ran twice
    assert log.read_text().count("load ") == 3 + 1
    keys = ["task", "checkpoint", "protocol", "seed", "lr", "weight_decay"]
    assert len(runs) == 2 * 3 and not runs.duplicated(keys).any()
    assert runs.groupby("checkpoint")["selected"].sum().eq(2).all()  # grid winner + the other seed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the one-CPU Ray workers
    try:
        with ResultsStore(tmp_path / "local.sqlite") as store:
            local = finetune(nets, [task], config, store)
            local_runs = store.table("finetune_runs")
    finally:
        torch.set_num_threads(threads)
    columns = [*keys, "val_accuracy", "test_accuracy", "selected"]
    order = sorted(keys)
    pd.testing.assert_frame_equal(
        runs[columns].sort_values(order).reset_index(drop=True),
        local_runs[columns].sort_values(order).reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(remote, local)


def test_select_on_ray_equals_the_local_selection(cluster, tmp_path):
    """``select`` with its (round, candidate) jobs as Ray tasks: every unit restores its run from the
    state the previous round saved, and the selection is the local one, step for step."""
    import sqlite3

    import torch

    from ckptrank.data import load_dataset
    from ckptrank.select import default_select_config, select_checkpoint

    pool = load_dataset("builtin:digits", split="train", per_class=10, seed=0)
    models = ["zoo:cnn-fm04", "zoo:cnn-random", "zoo:cnn-fm59"]
    options = {"budget": "12steps", "config": default_select_config(epochs=2), "min_candidates": 3}
    with RayExecutor(cluster.address, max_retries=2) as executor:
        remote = select_checkpoint(pool, models, out=tmp_path / "ray", executor=executor, **options)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the one-CPU Ray workers
    try:
        local = select_checkpoint(pool, models, out=tmp_path / "local", **options)
    finally:
        torch.set_num_threads(threads)
    assert remote.chosen == local.chosen
    columns = ["round", "checkpoint", "steps_from", "steps_to", "val_accuracy", "val_loss", "kept"]
    pd.testing.assert_frame_equal(remote.stages[columns], local.stages[columns])
    with sqlite3.connect(tmp_path / "ray" / "select.sqlite") as conn:
        stages = pd.read_sql_query("SELECT round, checkpoint FROM stages", conn)
    assert not stages.duplicated().any() and len(stages) == 3 + 2
    # only the survivors' latest states are left on the shared folder
    assert sorted(p.name for p in (tmp_path / "ray" / "state").glob("*.safetensors")) == sorted(
        p.name for p in (tmp_path / "local" / "state").glob("*.safetensors")
    )
