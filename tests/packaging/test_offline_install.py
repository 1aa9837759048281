"""The cpu bundle, built as `make package` builds it and installed as a site would: into
a fresh venv, with no package index (and, where the kernel lets us, no network at all),
then used end to end from the installed launcher: log a run, register the model, serve
it, get a prediction.

Building downloads the locked wheels (pip's cache makes reruns quick) and installing
takes a minute, so the bundle and its install are made once for the module."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))


def _offline_prefix() -> list[str]:
    """`unshare -n`: run in a network namespace with no interfaces but loopback, so any
    download attempt fails. Where that is not allowed, --no-index alone must do."""
    try:
        ok = subprocess.run(["unshare", "-n", "true"], check=False, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ["unshare", "-n"] if ok else []


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "CAIRN_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return {**env, **extra}


def run(cmd, *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True):
    proc = subprocess.run([str(c) for c in cmd], check=False, cwd=cwd, env=env if env is not None else _clean_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The unpacked cpu bundle."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, REPO / "packaging" / "build.py", "--variant", "cpu", "--dist", dist],
        cwd=REPO, env={**os.environ})
    (tarball,) = dist.glob("cairn-*-cpu-linux-x86_64.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        tar.extractall(dist / "unpacked", filter="data")
    top = {n.split("/", 1)[0] for n in names}
    assert len(top) == 1, top  # one folder, named after the bundle
    return dist / "unpacked" / top.pop()


@pytest.fixture(scope="module")
def installed(bundle, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("site") / "opt-cairn"
    run([*_offline_prefix(), "sh", bundle / "install.sh", "--prefix", prefix, "--python", BASE_PYTHON],
        cwd=bundle, env=_clean_env(PIP_INDEX_URL="http://127.0.0.1:9/simple"))
    return prefix


def test_bundle_holds_the_lock_and_nothing_else(bundle):
    wheels = sorted(p.name for p in (bundle / "wheels").iterdir())
    requirements = (bundle / "requirements.txt").read_text()
    pinned = [line.split("==")[0] for line in requirements.splitlines() if "==" in line]
    assert len(wheels) == len(pinned)
    assert "onnxruntime" in pinned and "onnxruntime-gpu" not in pinned
    assert requirements.count("--hash=sha256:") == len(pinned)
    assert pinned[0] == "cairn[cpu]"
    for name in ("install.sh", "cairn.service", "README.txt", "SHA256SUMS", "VARIANT"):
        assert (bundle / name).is_file(), name


def test_installed_cairn_logs_registers_and_serves(installed, tmp_path, launch):
    cairn = installed / "bin" / "cairn"
    python = installed / "venv" / "bin" / "python"
    data = tmp_path / "data"
    # The launcher is the installed venv's, not this checkout's.
    where = run([python, "-c", "import cairn.app, cairn.engine; print(cairn.app.__file__, cairn.engine.__file__)"],
                cwd=tmp_path).stdout
    assert where.count(str(installed)) == 2 and str(REPO) not in where
    # one import name: the design card's folders are cairn.*, not top-level packages
    others = "import importlib.util as u; print([n for n in ('engine', 'app', 'tui', 'cli') if u.find_spec(n)])"
    assert run([python, "-c", others], cwd=tmp_path).stdout.strip() == "[]"
    styles = "import importlib.resources as r; print(r.files('cairn.tui').joinpath('styles/app.tcss').is_file())"
    assert run([python, "-c", styles], cwd=tmp_path).stdout.strip() == "True"

    script = textwrap.dedent("""
        import cairn
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        cairn.set_experiment("offline")
        cairn.autolog()
        X, y = load_iris(return_X_y=True)
        with cairn.start_run(run_name="logreg") as run:
            LogisticRegression(max_iter=500).fit(X, y)
            cairn.log_metric("my_score", 0.5)
        print(run.info.run_id)
    """)
    env = _clean_env(CAIRN_HOME=str(data))
    run_id = run([python, "-c", script], cwd=tmp_path, env=env).stdout.strip().splitlines()[-1]

    run([cairn, "--data", data, "models", "register", f"runs:/{run_id}/model", "iris"], cwd=tmp_path)
    shown = run([cairn, "--data", data, "models", "versions", "iris"], cwd=tmp_path).stdout
    assert "READY" in shown

    proc, url = launch(data, "-m", "models:/iris/1", command=("models", "serve"), program=[str(cairn)])
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    response = httpx.post(f"{url}/invocations", json={"inputs": rows}, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    labels = [p["label"] if isinstance(p, dict) else p for p in predictions]
    assert labels == [0, 2]
    launch.stop(proc)

    report = run([cairn, "--data", data, "doctor"], cwd=tmp_path, check=False)
    assert "onnxruntime" in (report.stdout + report.stderr).lower()


def test_reinstall_switches_venv_keeps_the_previous_and_installs_the_unit(bundle, installed, tmp_path):
    before = os.readlink(installed / "venv")
    units = tmp_path / "units"
    run([*_offline_prefix(), "sh", bundle / "install.sh", "--prefix", installed, "--python", BASE_PYTHON,
         "--systemd", "--unit-dir", units, "--no-user"], cwd=bundle)
    after = os.readlink(installed / "venv")
    assert after != before
    assert sorted(p.as_posix() for p in (installed / "versions").iterdir()) == sorted([before, after])
    run([installed / "bin" / "cairn", "--help"], cwd=installed)
    unit = (units / "cairn.service").read_text()
    assert f"ExecStart={installed}/bin/cairn " in unit
    assert "/opt/cairn" not in unit


def test_rollback_switches_back_and_forward(bundle, installed, tmp_path):
    if len(list((installed / "versions").iterdir())) < 2:  # this test alone: make the second install
        run([*_offline_prefix(), "sh", bundle / "install.sh", "--prefix", installed, "--python", BASE_PYTHON],
            cwd=bundle)
    current = os.readlink(installed / "venv")
    (previous,) = {p.as_posix() for p in (installed / "versions").iterdir()} - {current}

    back = run(["sh", bundle / "install.sh", "--prefix", installed, "--rollback"], cwd=tmp_path)
    assert os.path.realpath(installed / "venv") == os.path.realpath(previous)
    assert f"rolled back: {installed}/venv -> {os.path.realpath(previous)}" in back.stdout
    run([installed / "bin" / "cairn", "--help"], cwd=installed)

    # Forward again, through another spelling of the prefix: the one in use is still told apart.
    link = tmp_path / "cairn-link"
    link.symlink_to(installed)
    run(["sh", bundle / "install.sh", "--prefix", link, "--rollback"], cwd=tmp_path)
    assert os.path.realpath(installed / "venv") == os.path.realpath(current)
    assert {p.as_posix() for p in (installed / "versions").iterdir()} == {current, previous}


def test_rollback_refuses_without_an_install_to_go_back_to(bundle, tmp_path):
    proc = run(["sh", bundle / "install.sh", "--prefix", tmp_path / "none", "--rollback"], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert f"no Cairn installed by install.sh at {tmp_path / 'none'}" in proc.stderr

    # One version only (a first install), and a previous one that no longer starts.
    prefix = tmp_path / "site"
    for name, code in (("v1", 0), ("v2", 1)):
        (prefix / "versions" / name / "bin").mkdir(parents=True)
        launcher = prefix / "versions" / name / "bin" / "cairn"
        launcher.write_text(f"#!/bin/sh\nexit {code}\n")
        launcher.chmod(0o755)
    (prefix / "venv").symlink_to(prefix / "versions" / "v1")
    broken = prefix / "versions" / "v2"
    proc = run(["sh", bundle / "install.sh", "--prefix", prefix, "--rollback"], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert f"the previous install {broken} does not start: nothing was changed" in proc.stderr
    assert os.readlink(prefix / "venv") == str(prefix / "versions" / "v1")

    shutil.rmtree(broken)
    proc = run(["sh", bundle / "install.sh", "--prefix", prefix, "--rollback"], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "no previous install" in proc.stderr


def test_refuses_a_python_that_is_too_old(bundle, tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\necho 3.9\n")
    fake.chmod(0o755)
    proc = run(["sh", bundle / "install.sh", "--prefix", tmp_path / "p", "--python", fake], cwd=bundle, check=False)
    assert proc.returncode == 1
    assert "Python 3.9" in proc.stderr and "too old" in proc.stderr and "3.11" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_refuses_the_wrong_architecture(bundle, tmp_path):
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "uname").write_text('#!/bin/sh\n[ "$1" = -m ] && echo aarch64 || echo Linux\n')
    (shim / "uname").chmod(0o755)
    env = _clean_env()
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    proc = run(["sh", bundle / "install.sh", "--prefix", tmp_path / "p"], cwd=bundle, env=env, check=False)
    assert proc.returncode == 1
    assert "bundle is for linux-x86_64; this machine is linux-aarch64" in proc.stderr


def test_refuses_a_changed_bundle_and_changes_nothing(bundle, tmp_path):
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    wheel = next((copy / "wheels").glob("msgspec-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    proc = run(["sh", copy / "install.sh", "--prefix", tmp_path / "p", "--python", BASE_PYTHON],
               cwd=copy, check=False)
    assert proc.returncode == 1
    assert "SHA256SUMS" in proc.stderr and "damaged" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_the_aarch64_bundle_holds_arm_wheels_and_is_refused_here(tmp_path):
    """Built from this x86_64 machine for an ARM edge device (it cannot run here): every
    compiled wheel is an aarch64 one, and install.sh says which machine it is for."""
    run([sys.executable, REPO / "packaging" / "build.py", "--variant", "cpu-aarch64", "--dist", tmp_path],
        cwd=REPO, env={**os.environ})
    (tarball,) = tmp_path.glob("cairn-*-cpu-aarch64-linux-aarch64.tar.gz")
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (bundle,) = (tmp_path / "unpacked").iterdir()
    wheels = [p.name for p in (bundle / "wheels").iterdir()]
    compiled = [w for w in wheels if not w.endswith("-none-any.whl")]
    assert compiled and all("aarch64" in w for w in compiled), compiled
    assert any(w.startswith("onnxruntime-") for w in compiled)
    assert (bundle / "VARIANT").read_text().split()[2] == "linux-aarch64"
    proc = run(["sh", bundle / "install.sh", "--prefix", tmp_path / "p"], cwd=bundle, check=False)
    assert proc.returncode == 1
    assert "bundle is for linux-aarch64; this machine is linux-x86_64" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_uninstall_removes_the_install_and_its_service_and_keeps_the_data(bundle, installed, tmp_path):
    """Last in the module: it removes the module's install."""
    units = tmp_path / "units"
    units.mkdir()
    unit = (bundle / "cairn.service").read_text().replace("/opt/cairn", str(installed))
    (units / "cairn.service").write_text(unit)  # as install.sh --systemd writes it
    data = tmp_path / "data"
    run([installed / "bin" / "cairn", "--data", data, "experiments", "list"], cwd=tmp_path)  # opens (makes) it
    made = sorted(p.name for p in data.iterdir())
    assert made
    (installed / "notes.txt").write_text("the site's own file")

    proc = run(["sh", bundle / "install.sh", "--prefix", installed, "--unit-dir", units, "--rollback",
                "--uninstall"], cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "choose one" in proc.stderr

    done = run(["sh", bundle / "install.sh", "--prefix", installed, "--unit-dir", units, "--uninstall"], cwd=tmp_path)
    assert "its data in /var/lib/cairn is kept" in done.stdout
    assert not (units / "cairn.service").exists()
    assert sorted(p.name for p in installed.iterdir()) == ["notes.txt"]  # nothing of ours, nothing of theirs lost
    assert sorted(p.name for p in data.iterdir()) == made  # data directories are never touched

    again = run(["sh", bundle / "install.sh", "--prefix", installed, "--uninstall"], cwd=tmp_path, check=False)
    assert again.returncode == 1 and "no Cairn installed by install.sh at" in again.stderr
