"""Bad ``--data`` tables and bad ``--results`` databases: the real entry point prints one line, exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckptrank.bench.store import ResultsStore
from ckptrank.cli.main import main

# A checkpoint spec that never reaches a network: the data error must come first.
MODEL = "file:/nonexistent/ckptrank-test/none.safetensors"
BENCH = ["bench", "--suite", "published:tllib", "--bootstrap", "0", "--format", "json"]
SUFFIX = " (set CKPTRANK_DEBUG=1 for the traceback)"


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``ckptrank ARGS`` through ``main``; assert exit 1 and one ``error:`` line; return its message."""
    monkeypatch.delenv("CKPTRANK_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["ckptrank", *args])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and lines[0].endswith(SUFFIX), lines[0]
    assert "Traceback" not in captured.err + captured.out
    return lines[0][len("error: ") : -len(SUFFIX)]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "images.csv",
            "path,label\n",
            "images.csv has a header (path, label) but no rows; add one row per sample below it "
            "(columns path or text, and label)",
        ),
        (
            "texts.csv",
            "text,label\n",
            "texts.csv has a header (text, label) but no rows; add one row per sample below it "
            "(columns path or text, and label)",
        ),
        ("empty.csv", "", "{folder}/empty.csv is empty; expected a header row and one row per sample"),
        (
            "empty.jsonl",
            "",
            'empty.jsonl has no records; expected one JSON object per line with keys "path" or "text", '
            'and "label", e.g. {"text": "a sentence", "label": "positive"}',
        ),
        (
            "unlabelled.csv",
            "text,label\nfoo,\nbar,\n",
            "unlabelled.csv: the 'label' column is empty (0 of 2 rows have a label); give every sample a "
            "label (a class name or number)",
        ),
    ],
)
def test_rank_with_a_table_without_samples(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    expected: str,
) -> None:
    (tmp_path / name).write_text(text)
    message = run_main(monkeypatch, capsys, "rank", "--data", str(tmp_path / name), "--models", MODEL)
    assert message == expected.replace("{folder}", str(tmp_path))


def _store(path: Path, rows: int = 300) -> Path:
    with ResultsStore(path) as store:
        for i in range(rows):
            store.add_score(suite="s", task=f"t{i}", checkpoint="c" * 40, measure="m", value=i, seconds=0.0)
    return path


def _damage_index_page(path: Path) -> int:
    """Overwrite a mid-file leaf page of an index (b-tree page type 0x0A) with random bytes."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    leaves = [n + 1 for n in range(1, len(data) // page_size) if data[n * page_size] == 0x0A]
    page = leaves[len(leaves) // 2]
    start = (page - 1) * page_size
    data[start + 8 : start + page_size] = np.random.default_rng(3).bytes(page_size - 8)
    path.write_bytes(bytes(data))
    return page


def _snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


def test_bench_results_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = run_main(monkeypatch, capsys, *BENCH, "--results", str(tmp_path))
    assert message == (
        f"results store {tmp_path} is a folder; give a file path such as {tmp_path / 'results.sqlite'} "
        "(--results or CKPTRANK_RESULTS)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["random", "truncated", "index-page"])
def test_bench_results_damaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = _store(tmp_path / "r.sqlite")
    size = path.stat().st_size
    if damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(size))
        expected = f"is not an SQLite database (its {size} bytes do not start with the SQLite header)"
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: size // 2])
        expected = f"is truncated: {size // 2} bytes, but its header records"
    else:
        page = _damage_index_page(path)
        expected = "is damaged: PRAGMA quick_check reports: "
    before = _snapshot(path)
    message = run_main(monkeypatch, capsys, *BENCH, "--results", str(path))
    assert message.startswith(f"results store {path} {expected}")
    if damage == "index-page":
        assert f"page {page}" in message.lower()
    assert message.endswith(
        "; move it aside (e.g. rename it to r.sqlite.damaged) and re-run, or pass another --results path"
    )
    assert _snapshot(path) == before


def test_console_script_damaged_results(tmp_path: Path) -> None:
    """The installed ``ckptrank`` command itself: one line on stderr, exit status 1, file untouched."""
    path = _store(tmp_path / "r.sqlite")
    page = _damage_index_page(path)
    before = _snapshot(path)
    script = Path(sys.executable).with_name("ckptrank")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "ckptrank.cli.main"]
    env = {k: v for k, v in os.environ.items() if k != "CKPTRANK_DEBUG"}
    done = subprocess.run(
        [*command, *BENCH, "--results", str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: results store {path} is damaged: "), done.stderr
    assert f"page {page}" in lines[0].lower()
    assert _snapshot(path) == before
