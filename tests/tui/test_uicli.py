"""`cairn ui`: its flags, and textual loading only for that command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_ui_flags():
    args = build_parser().parse_args(["--data", "/tmp/x", "ui", "--remote", "http://127.0.0.1:5000"])
    assert args.remote == "http://127.0.0.1:5000" and args.data == "/tmp/x"
    assert build_parser().parse_args(["ui"]).remote is None


def test_other_commands_do_not_load_textual():
    code = "import sys, app.cli; app.cli.build_parser(); print('textual' in sys.modules, 'tui' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_ui_runs_the_app_on_the_data_dir(tmp_path, monkeypatch):
    """cmd_ui builds a LocalBackend on --data and runs create_tui's app."""
    import tui.app
    from app.cli import main

    ran = []
    monkeypatch.setattr(tui.app.CairnApp, "run", lambda self: ran.append(self.backend.describe()))
    assert main(["--data", str(tmp_path), "ui"]) == 0
    assert ran == [str(tmp_path.resolve())]
