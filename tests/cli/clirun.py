"""Running `cairn` as a user types it, for the CLI tests in this folder (importable from
them: pytest puts this folder on sys.path, as it holds no package)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(data: str | Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m cairn.cli --data DATA ARGS...`; CAIRN_HOME beside the data directory, so
    a command that forgot --data could never touch the real home directory."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAIRN_HOME": str(Path(data).parent / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "--data", str(data), *args],
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


# A user's training script: autologged LogisticRegression on iris, one run, its id printed.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import cairn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    cairn.set_tracking_dir(sys.argv[1])
    cairn.set_experiment("iris-exp")
    cairn.autolog()
    X, y = load_iris(return_X_y=True)
    with cairn.start_run(run_name="logreg") as run:
        LogisticRegression(max_iter=300).fit(X, y)
        {extra}
    print(run.info.run_id)
    """
)


def write_train_script(work: Path, extra: str = "") -> Path:
    """`work/train.py`; `extra` is one more statement inside the run."""
    path = work / "train.py"
    path.write_text(TRAIN_SCRIPT.replace("{extra}", extra))
    return path


def run_train_script(work: Path, data: str | Path) -> str:
    """Run `work/train.py` on the data directory `data`; the run id it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "train.py", str(data)], cwd=work, env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return out.stdout.strip().splitlines()[-1]
