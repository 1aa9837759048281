"""`cairn ui`: its flags, and textual loading only for that command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cairn.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_ui_flags():
    args = build_parser().parse_args(["--data", "/tmp/x", "ui", "--remote", "http://127.0.0.1:5000"])
    assert args.remote == "http://127.0.0.1:5000" and args.data == "/tmp/x"
    assert build_parser().parse_args(["ui"]).remote is None


def test_other_commands_do_not_load_textual():
    code = "import sys, cairn.cli.main as m; m.build_parser(); print('textual' in sys.modules, 'cairn.tui' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_ui_runs_the_app_on_the_data_dir(tmp_path, monkeypatch):
    """cmd_ui builds a LocalBackend on --data and runs create_tui's app."""
    from cairn.cli.main import main
    from cairn.tui.app import CairnApp

    ran = []
    monkeypatch.setattr(CairnApp, "run", lambda self: ran.append(self.backend.describe()))
    assert main(["--data", str(tmp_path), "ui"]) == 0
    assert ran == [str(tmp_path.resolve())]
