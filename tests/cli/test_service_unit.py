"""packaging/cairn.service: the systemd unit the installer copies (with `/opt/cairn`
replaced by its --prefix). Read as systemd reads it, its settings checked, and its
ExecStart parsed by Cairn's own command-line parser, so a renamed flag breaks this test
rather than a device in the field. `systemd-analyze verify` runs where it is installed."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from cairn.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "packaging" / "cairn.service"
PREFIX = "/opt/cairn"  # the literal the installer replaces
STATE = "/var/lib/cairn"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values in order. Not configparser: systemd repeats keys
    (Environment=, DeviceAllow=), continues lines with a backslash, and an empty
    assignment resets the list."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting before any [section]: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def one(unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set once, is {values}"
    return values[0]


def exec_argv(unit) -> list[str]:
    # Strip systemd's ExecStart prefixes (-, @, +, !, :): none is expected, but the
    # command line after them is what runs.
    return shlex.split(one(unit, "Service", "ExecStart").lstrip("-@+!:"))


def test_runs_as_an_unprivileged_user_over_the_state_directory(unit):
    service = unit["Service"]
    assert one(unit, "Service", "User") == "cairn" and one(unit, "Service", "Group") == "cairn"
    assert one(unit, "Service", "StateDirectory") == "cairn"  # i.e. /var/lib/cairn
    assert f"CAIRN_HOME={STATE}" in service["Environment"]
    assert "DynamicUser" not in service  # the installer creates a real `cairn` user


def test_exec_start_parses_with_cairns_own_parser(unit):
    argv = exec_argv(unit)
    assert argv[0] == f"{PREFIX}/bin/cairn"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "server" and args.handler.__name__ == "cmd_server"
    assert args.data == STATE
    assert (args.host, args.port) == ("127.0.0.1", 5000)


def test_restarts_on_failure_within_limits(unit):
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "RestartSec")
    # Start limits belong in [Unit] (systemd ignores them in [Service] since v230).
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 3
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) > 0
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_stops_with_sigterm_and_time_to_drain(unit):
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    timeout = one(unit, "Service", "TimeoutStopSec")
    assert timeout.endswith("s") and int(timeout[:-1]) >= 30


def test_sandboxing_that_leaves_onnx_runtime_and_gpus_working(unit):
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": STATE,
    }
    for key, value in expected.items():
        assert one(unit, "Service", key) == value, key
    service = unit["Service"]
    # Each of these would break ONNX Runtime or hide the GPU (the unit says why).
    assert service.get("MemoryDenyWriteExecute", ["no"]) == ["no"]
    assert service.get("PrivateDevices", ["no"]) == ["no"]
    assert "ProcSubset" not in service and "PrivateUsers" not in service
    assert "AF_INET" in one(unit, "Service", "RestrictAddressFamilies").split()


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # As the installer would: the prefix replaced, a `cairn` there (verify refuses an
    # ExecStart that is not executable).
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    stub = prefix / "bin" / "cairn"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    installed = tmp_path / "cairn.service"
    installed.write_text(UNIT.read_text().replace(PREFIX, str(prefix)))
    proc = subprocess.run([analyze, "verify", str(installed)], capture_output=True, text=True, timeout=60, check=False)
    # An unknown or malformed setting is only a warning (exit 0) naming the file and line.
    about_unit = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "cairn.service" in ln]
    if proc.returncode != 0 and not about_unit and "cannot" in proc.stderr.lower():
        pytest.skip(f"systemd-analyze cannot run here: {proc.stderr.strip()}")
    assert proc.returncode == 0 and not about_unit, proc.stdout + proc.stderr
