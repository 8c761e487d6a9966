"""``ckptrank cache ls / rm / verify`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ckptrank.cli.main import app
from ckptrank.engine import FeatureCache

KEY_A = "a1" * 32
KEY_B = "b2" * 32

runner = CliRunner()


def _fill(root: Path) -> FeatureCache:
    cache = FeatureCache(root)
    cache.put(
        KEY_A,
        features=np.ones((6, 4)),
        source_probs=np.full((6, 2), 0.5),
        meta={"checkpoint": "efficientnet-lite0", "dataset": "fashion-mnist", "split": "train"},
    )
    cache.put(
        KEY_B,
        features=np.zeros((3, 2)),
        meta={"checkpoint": "all-minilm-l6-v2", "dataset": "wn", "split": "train"},
    )
    return cache


def _run(*args: str, env: dict[str, str] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    """Invoke the CLI with a wide terminal, so that rich does not wrap lines."""
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})}, **kwargs)  # type: ignore[arg-type]


def test_ls_human_json_quiet(tmp_path: Path) -> None:
    empty = _run("cache", "ls", "--cache-dir", str(tmp_path))
    assert empty.exit_code == 0 and "is empty" in empty.output
    _fill(tmp_path)
    human = _run("cache", "ls", "--cache-dir", str(tmp_path))
    assert human.exit_code == 0, human.output
    assert KEY_A[:12] in human.output and "efficientnet-lite0" in human.output and "6 x 4" in human.output
    assert "2 entries" in human.output
    data = json.loads(_run("cache", "ls", "--cache-dir", str(tmp_path), "--format", "json").output)
    assert data["root"] == str(tmp_path)
    by_key = {e["key"]: e for e in data["entries"]}
    assert by_key[KEY_A]["n_source_classes"] == 2 and by_key[KEY_B]["n_source_classes"] is None
    assert by_key[KEY_B]["checkpoint"] == "all-minilm-l6-v2" and by_key[KEY_B]["status"] == "complete"
    quiet = _run("cache", "ls", "--cache-dir", str(tmp_path), "--format", "quiet")
    assert sorted(quiet.output.split()) == [KEY_A, KEY_B]


def test_cache_dir_defaults_to_the_environment(tmp_path: Path) -> None:
    _fill(tmp_path)
    quiet = _run("cache", "ls", "--format", "quiet", env={"CKPTRANK_CACHE": str(tmp_path)})
    assert sorted(quiet.output.split()) == [KEY_A, KEY_B]


def test_rm_prefix_and_all(tmp_path: Path) -> None:
    cache = _fill(tmp_path)
    out = _run("cache", "rm", "a1a1", "--cache-dir", str(tmp_path), "--format", "json")
    assert out.exit_code == 0 and json.loads(out.output)["removed"] == [KEY_A]
    assert [e.key for e in cache.ls()] == [KEY_B]
    refused = _run("cache", "rm", "all", "--cache-dir", str(tmp_path), input="n\n")
    assert refused.exit_code == 1 and [e.key for e in cache.ls()] == [KEY_B]
    asked = _run("cache", "rm", "all", "--cache-dir", str(tmp_path), input="y\n")
    assert asked.exit_code == 0 and "Removed 1 entries" in asked.output and cache.ls() == []
    _fill(tmp_path)
    assert _run("cache", "rm", "all", "--yes", "--cache-dir", str(tmp_path)).exit_code == 0
    assert cache.ls() == []


def test_rm_errors_are_value_errors_for_the_error_mapper(tmp_path: Path) -> None:
    _fill(tmp_path)
    unknown = _run("cache", "rm", "ffff", "--cache-dir", str(tmp_path))
    assert unknown.exit_code != 0 and isinstance(unknown.exception, ValueError)
    assert "no cache entry" in str(unknown.exception)
    json_all = _run("cache", "rm", "all", "--format", "json", "--cache-dir", str(tmp_path))
    assert isinstance(json_all.exception, ValueError) and "needs --yes" in str(json_all.exception)
    bad_format = _run("cache", "ls", "--format", "yaml", "--cache-dir", str(tmp_path))
    assert isinstance(bad_format.exception, ValueError) and "--format must be one of" in str(
        bad_format.exception
    )


def test_verify_reports_and_deletes_corrupt_entries(tmp_path: Path) -> None:
    cache = _fill(tmp_path)
    ok = _run("cache", "verify", "--cache-dir", str(tmp_path))
    assert ok.exit_code == 0 and "Checked 2 entries" in ok.output and "0 corrupt" in ok.output
    npz = cache.path_for(KEY_A)
    npz.write_bytes(npz.read_bytes()[:50])
    bad = _run("cache", "verify", "--cache-dir", str(tmp_path))
    assert bad.exit_code == 1 and "1 corrupt" in bad.output and "checksum mismatch" in bad.output
    assert "verify --delete" in bad.output
    report = json.loads(_run("cache", "verify", "--cache-dir", str(tmp_path), "--format", "json").output)
    assert report["checked"] == 2
    assert [r["key"] for r in report["results"] if not r["ok"]] == [KEY_A]
    quiet = _run("cache", "verify", "--cache-dir", str(tmp_path), "--format", "quiet")
    assert quiet.output.split() == [KEY_A] and quiet.exit_code == 1
    fixed = _run("cache", "verify", "--delete", "--cache-dir", str(tmp_path))
    assert fixed.exit_code == 0 and not npz.exists()
    assert _run("cache", "verify", "--cache-dir", str(tmp_path)).exit_code == 0


@pytest.mark.parametrize("command", ["ls", "rm", "verify"])
def test_help_has_examples(command: str) -> None:
    out = _run("cache", command, "--help")
    assert out.exit_code == 0
    assert "Examples:" in out.output and f"ckptrank cache {command}" in out.output
    assert "--cache-dir" in out.output and "--format" in out.output


def test_ls_lists_assembled_assets(tmp_path: Path) -> None:
    asset = tmp_path / "assets" / "all-mpnet-base-v2-0123456789ab"
    asset.mkdir(parents=True)
    (asset / "model.safetensors").write_bytes(b"x" * 2048)
    (tmp_path / "assets" / ".all-mpnet-base-v2-0123456789ab.lock").write_text("")
    human = _run("cache", "ls", "--cache-dir", str(tmp_path))
    assert human.exit_code == 0 and "all-mpnet-base-v2-0123456789ab (2.0 KB)" in human.output, human.output
    data = json.loads(_run("cache", "ls", "--cache-dir", str(tmp_path), "--format", "json").output)
    assert data["assets"] == [{"name": "all-mpnet-base-v2-0123456789ab", "size_bytes": 2048}]
