"""The decision the rank table states: p(best), the shortlist and the 'fine-tune these' line."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ckptrank.cli.rank import decision_line, uses_default_ranker


def _frame(p_best, shortlist):
    return pd.DataFrame(
        {"checkpoint": ["a", "b", "c"], "p_best": p_best, "shortlist": shortlist, "rank": [1, 2, 3]}
    )


def test_decision_line_names_the_shortlist_and_its_probability():
    frame = _frame([0.6, 0.35, 0.05], [True, True, False])
    assert uses_default_ranker(frame)
    assert decision_line(frame) == (
        "Fine-tune these 2: a, b (probability 95% that the best is among them, from the default ranker's "
        "held-out error)."
    )
    one = _frame([0.97, 0.02, 0.01], [True, False, False])
    assert decision_line(one).startswith("Fine-tune this: a (probability 97% that the best is this one")
    frame.attrs["config"] = {"resamples": 10}
    assert decision_line(frame).endswith(
        "from the default ranker's held-out error and 10 resamples of the target set)."
    )


def test_resamples_flag_with_measures_is_one_line_naming_the_flag():
    from typer.testing import CliRunner

    from ckptrank.cli.main import app

    args = ["rank", "--data", "builtin:digits", "--models", "zoo:cnn-random", "--measures", "logme"]
    result = CliRunner().invoke(app, [*args, "--resamples", "3"])
    assert result.exit_code == 1
    assert "--resamples 3 needs the default ranker" in result.output
    assert "Traceback" not in result.output
    negative = CliRunner().invoke(
        app, ["rank", "--data", "builtin:digits", "--models", "x", "--resamples", "-1"]
    )
    assert negative.exit_code == 2 and "--resamples" in negative.output


def test_no_decision_without_the_default_ranker():
    frame = _frame([np.nan] * 3, [False] * 3)
    assert not uses_default_ranker(frame) and decision_line(frame) is None


def test_unknown_executor_is_one_line_before_any_work():
    from typer.testing import CliRunner

    from ckptrank.cli.main import app

    result = CliRunner().invoke(
        app, ["rank", "--data", "builtin:digits", "--models", "zoo:cnn-random", "--executor", "nope"]
    )
    assert result.exit_code == 1
    assert "unknown executor 'nope'; choose one of: local, ray" in result.output


def test_every_command_takes_the_executor_flags():
    from typer.testing import CliRunner

    from ckptrank.cli.main import app

    data = ["--data", "builtin:digits"]
    for command in (
        ["ensemble", *data, "--models", "zoo:cnn-random,zoo:cnn-fm04", "--k", "1"],
        ["select", *data, "--models", "zoo:cnn-random,zoo:cnn-fm04", "--budget", "10steps"],
        ["finetune", "zoo:cnn-random", *data],
    ):
        result = CliRunner().invoke(app, [*command, "--executor", "nope"])
        assert result.exit_code == 1, (command, result.output)
        # finetune's errors are mapped to one line by the entry point around the app (ckptrank.cli.main)
        message = result.output or f"error: {result.exception}"
        lines = [line for line in message.splitlines() if line.strip()]
        assert len(lines) == 1, (command, lines)
        assert lines[0].startswith("error: unknown executor 'nope'; choose one of: local, ray"), command
        result = CliRunner().invoke(app, [*command, "--executor", "local", "--ray-address", "auto"])
        assert result.exit_code == 1, (command, result.output)
        message = result.output or str(result.exception)
        assert "a Ray address ('auto') was given with the local executor; pass --executor ray" in message


def test_one_class_error_names_the_class_not_its_code(tmp_path):
    from typer.testing import CliRunner

    from ckptrank.cli.main import app

    data = tmp_path / "one.csv"
    data.write_text("text,label\nhello,positive\nworld,positive\n")
    result = CliRunner().invoke(app, ["rank", "--data", str(data), "--models", "glove-6b-50d"])
    assert result.exit_code == 1
    expected = "has 1 class ('positive', 2 samples); ranking needs labelled samples of at least 2"
    assert expected in result.output
