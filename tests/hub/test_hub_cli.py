"""``ckptrank rank`` with hub names, run as a user runs it: a subprocess against the loopback hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import repos

WORDS = repos.WORDS


def _texts_csv(path: Path) -> Path:
    rows = ["text,label"]
    for i in range(36):
        label = i % 3
        words = [WORDS[(label * 4 + j + i) % len(WORDS)] for j in range(5)]
        rows.append(f"{' '.join(words)},{'abc'[label]}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _ckptrank(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    full.update(env)
    full["CKPTRANK_DISABLE_PROGRESS_BARS"] = "1"
    code = "import sys; from ckptrank.cli.main import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_rank_downloads_then_ranks_offline_from_the_cache(hub, hub_env, tmp_path):
    bert = repos.tiny_bert(tmp_path / "bert")
    bert_commit = hub.add_folder("org/tiny-bert", bert)
    hub.add_folder("org/tiny-st", repos.tiny_st(tmp_path / "st", bert))
    data = _texts_csv(tmp_path / "texts.csv")
    models = "hf:org/tiny-bert,st:org/tiny-st"
    base = ["rank", "--data", str(data), "--measures", "logme,knn", "--format", "json"]

    first = _ckptrank([*base, "--models", models, "--out", str(tmp_path / "first")], hub_env)
    assert first.returncode == 0, first.stderr
    gets = hub.downloads()
    assert f"org/tiny-bert/resolve/{bert_commit}/model.safetensors" in gets
    assert any(p.startswith("org/tiny-st/") and p.endswith("model.safetensors") for p in gets)
    # Not a terminal: one line per downloaded file.
    assert "downloading hf:org/tiny-bert: model.safetensors" in first.stderr
    config = json.loads((tmp_path / "first" / "config.json").read_text())
    assert bert_commit in json.dumps(config)

    hub.stop()
    second = _ckptrank([*base, "--models", models, "--offline"], hub_env)
    assert second.returncode == 0, second.stderr
    assert "downloading" not in second.stderr
    ranked_first = {r["checkpoint"]: r["scores"]["logme"] for r in json.loads(first.stdout)}
    ranked_second = {r["checkpoint"]: r["scores"]["logme"] for r in json.loads(second.stdout)}
    assert ranked_first == ranked_second and len(ranked_first) == 2
    revisions = {r["checkpoint"]: r["revision"] for r in json.loads(second.stdout)}
    assert revisions["hf:org/tiny-bert"] == bert_commit

    uncached = _ckptrank([*base, "--models", "hf:org/never-fetched", "--offline"], hub_env)
    assert uncached.returncode != 0
    lines = [line for line in uncached.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "hf:org/never-fetched" in lines[0] and "hf download" in lines[0], lines
    assert "Traceback" not in uncached.stderr


@pytest.mark.slow
def test_remote_code_repo_is_refused_with_y_on_stdin(hub, hub_env, tmp_path):
    marker = tmp_path / repos.MARKER_NAME
    hub.add_folder("org/evil", repos.remote_code_repo(tmp_path / "evil", marker))
    data = _texts_csv(tmp_path / "texts.csv")
    done = _ckptrank(
        ["rank", "--data", str(data), "--models", "hf:org/evil", "--measures", "logme"],
        hub_env,
        stdin="y\ny\n",
    )
    assert done.returncode != 0
    assert not marker.exists()
    assert "[y/N]" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert "needs the repository's own Python code" in done.stderr
    assert not any(p.endswith(".py") for p in hub.downloads())
