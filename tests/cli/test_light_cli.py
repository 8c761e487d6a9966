"""``ckptrank --help``, ``--version`` and ``measures`` import no heavy library (the lazy-import structure)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "sklearn", "scipy", "pandas", "transformers", "timm", "torchvision", "huggingface_hub")


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["rank", "--help"], ["bench", "--help"], ["measures"]]
)
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['ckptrank', *{args!r}]\n"
        "from ckptrank.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_version_prints_the_package_version() -> None:
    from ckptrank import __version__

    done = subprocess.run(
        [sys.executable, "-c", "from ckptrank.cli.main import main; main()", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == f"ckptrank {__version__}"
