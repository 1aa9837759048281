"""Running `cairn` as a user types it, for the CLI tests in this folder (importable from
them: pytest puts this folder on sys.path, as it holds no package)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(data: str | Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m app.cli --data DATA ARGS...`; CAIRN_HOME beside the data directory, so
    a command that forgot --data could never touch the real home directory."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAIRN_HOME": str(Path(data).parent / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "--data", str(data), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def assert_clean_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 1 with one `error:` line naming `words`, and no traceback."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
