"""A loopback hub per test module, and an environment that points huggingface_hub at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import LoopbackHub


@pytest.fixture
def hub() -> Iterator[LoopbackHub]:
    with LoopbackHub() as server:
        yield server


@pytest.fixture
def hub_env(hub: LoopbackHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Online, against ``hub``, with a fresh HF cache and torch hub folder; returns the variables
    (for a subprocess). In this process huggingface_hub read its settings at import, so the
    same values are patched into its constants."""
    import huggingface_hub.constants as constants

    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_CACHE": str(tmp_path / "hf-home" / "hub"),
        "TORCH_HOME": str(tmp_path / "torch-home"),
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "CKPTRANK_CACHE": str(tmp_path / "ckptrank-cache"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("ckptrank.adapters._hub._UNREACHABLE", {})
    return env


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch hub access off, as ``--offline`` / ``HF_HUB_OFFLINE=1`` does."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
