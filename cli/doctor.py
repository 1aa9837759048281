"""`cairn doctor`: is this machine ready to run Cairn, and if not, what to fix.

Each check gives ok, warn or fail with its detail and, when not ok, the fix. Failures
mean something will not work (the data directory cannot be opened, no ONNX Runtime
provider loads, the server's port is taken, an endpoint serves a version that is not
READY): exit status 1. Warnings mean it works, but not as asked (a GPU endpoint that
will run on CPU, little free disk): exit status 0.

The checks only look: a data directory that does not exist yet is not created (the
first real command creates it), no endpoint session is loaded. ONNX Runtime providers
are probed with a tiny model, the only way to know whether CUDA really loads here
(app/serving/runtime.py).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec

from cairn import engine
from cairn.app.address import DEFAULT_HOST, DEFAULT_PORT
from cairn.app.version import cairn_version
from cairn.cli import tables
from cairn.engine.errors import CairnError

# info: a fact that is not a problem here (CUDA not loading where nothing asks for a GPU).
OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"
# Below this, LMDB commits and blob writes are about to fail; below the warning level,
# registering a few models will get there.
FREE_FAIL_BYTES = 256 * 1024**2
FREE_WARN_BYTES = 2 * 1024**3


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# -- checks -------------------------------------------------------------------------------
def check_data_dir(path: Path) -> list[Check]:
    checks = []
    if path.exists() and not path.is_dir():
        return [Check("data directory", FAIL, f"{path} is a file, not a directory",
                      "move the file away, or give another directory with --data or $CAIRN_HOME")]
    existing = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    refused = _unwritable(existing)
    if refused:
        checks.append(Check("data directory", FAIL, f"{existing} is not writable: {refused}",
                            "fix its permissions (chown/chmod, chattr -i, a read-only mount), or give another "
                            "directory with --data"))
    elif path.exists():
        checks.append(Check("data directory", OK, str(path)))
    else:
        checks.append(Check("data directory", OK, f"{path} (created on first use)"))
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        return [*checks, Check("free space", FAIL, f"cannot read the free space of {existing}: {exc}")]
    if free < FREE_FAIL_BYTES:
        checks.append(Check("free space", FAIL, f"{_size(free)} free on {existing}",
                            "free some disk space or move the data directory (--data)"))
    elif free < FREE_WARN_BYTES:
        checks.append(Check("free space", WARN, f"{_size(free)} free on {existing}",
                            "models and payload logs will fill it soon: free some space"))
    else:
        checks.append(Check("free space", OK, f"{_size(free)} free"))
    return checks


def _unwritable(directory: Path) -> str:
    """Why files cannot be created in `directory`, or "" when they can. A real temporary
    file, not just os.access: root passes access() on a read-only mount or an immutable
    directory, and LMDB would fail there all the same."""
    import tempfile

    if not os.access(directory, os.W_OK | os.X_OK):
        return "permission denied for this user"
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".cairn-doctor-"):
            return ""
    except OSError as exc:
        return exc.strerror or str(exc)


def open_store(path: Path) -> tuple[engine.Engine | None, Check]:
    """The opened engine (None if it cannot be) and the LMDB check."""
    if not path.is_dir():
        return None, Check("LMDB", OK if not path.exists() else FAIL, "not created yet" if not path.exists()
                           else "no store: the data directory is unusable")
    try:
        eng = engine.open(path)
    except CairnError as exc:
        return None, Check("LMDB", FAIL, exc.message,
                           "if the store is damaged, restore the data directory from a backup")
    try:
        info = eng.storage_info()
    except Exception as exc:  # noqa: BLE001 (a store that opens but cannot be read is the finding)
        return eng, Check("LMDB", FAIL, f"opened, but cannot be read: {exc}",
                          "restore the data directory from a backup")
    used = info["used_bytes"]
    detail = (f"schema {info['schema_version']} (this Cairn reads up to {info['supported_schema_version']}), "
              f"map {_size(info['map_size'])}, {_size(used)} used ({used / info['map_size']:.1%}; "
              "the map grows when full)")
    return eng, Check("LMDB", OK, detail)


def check_providers() -> tuple[list[Check], dict[str, tuple[bool, str]]]:
    try:
        import onnxruntime as ort

        from cairn.app.serving.runtime import provider_report
    except ImportError as exc:
        return [Check("ONNX Runtime", FAIL, f"cannot be imported: {exc}",
                      "reinstall Cairn (onnxruntime or onnxruntime-gpu, never both)")], {}
    report = {provider: (loads, detail) for provider, loads, detail in provider_report()}
    checks = [Check("ONNX Runtime", OK, f"{ort.__version__}, built with {', '.join(ort.get_available_providers())}")]
    checks.append(check_ort_package())
    for provider, (loads, detail) in report.items():
        if loads:
            checks.append(Check(provider, OK, "loads"))
        elif provider == "CPUExecutionProvider":
            checks.append(Check(provider, FAIL, detail, "reinstall onnxruntime: no model can run"))
        else:  # only a problem where an endpoint asks for a GPU (see the endpoint checks)
            checks.append(Check(provider, INFO, detail))
    return checks, report


# The wheels that install the `onnxruntime` package: the CPU one and the CUDA one are the
# two Cairn's extras name (cpu, gpu); the others are builds a site may have chosen.
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml",
                     "onnxruntime-training", "ort-nightly", "ort-nightly-gpu")


def check_ort_package() -> Check:
    """Which ONNX Runtime wheel is installed: `onnxruntime` runs on CPU only, while
    `onnxruntime-gpu` can use CUDA (and runs on CPU too). Two of them at once overwrite
    each other's files, and which one's provider libraries ended up on disk is chance."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for dist in ORT_DISTRIBUTIONS:
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    if len(found) > 1:
        return Check("ONNX Runtime package", FAIL, f"several installed at once: {', '.join(found)}",
                     "uninstall all of them, then install one: onnxruntime (cpu) or onnxruntime-gpu (gpu)")
    if not found:  # a frozen or vendored build without package metadata
        return Check("ONNX Runtime package", INFO, "no package metadata (a bundled build)")
    kind = "CUDA-capable build" if "gpu" in found[0] else "CPU-only build"
    return Check("ONNX Runtime package", OK, f"{found[0]} ({kind})")


def check_port(host: str, port: int) -> Check:
    # SO_REUSEADDR, as uvicorn binds: a port held only by closing connections (TIME_WAIT)
    # is free for the server, a listening socket is not.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            taken = exc
        else:
            return Check("port", OK, f"{host}:{port} is free")
    running = _cairn_listening(host, port)
    if running:
        return Check("port", OK, f"{host}:{port} is taken by a running Cairn server ({running})")
    return Check("port", FAIL, f"{host}:{port} is taken ({taken.strerror or taken})",
                 f"stop what listens there (`ss -ltnp 'sport = :{port}'` shows it), or start the server "
                 "with --port N")


def _cairn_listening(host: str, port: int) -> str:
    """This Cairn's version if a Cairn server of it answers there, else "". Its own
    server holding the port is the appliance running, not a problem."""
    import urllib.request

    address = "127.0.0.1" if host in ("0.0.0.0", "") else host
    base = f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
            healthy = r.read(16) == b"OK"
        with urllib.request.urlopen(f"{base}/version", timeout=1) as r:
            answered = r.read(64).decode("utf-8", "replace").strip()
    except (OSError, ValueError):  # not HTTP, not answering, refused: something else holds it
        return ""
    return answered if healthy and answered == cairn_version() else ""


def check_endpoints(eng, providers: dict[str, tuple[bool, str]]) -> tuple[list[Check], list[list]]:
    """A check per served entity, and the table rows: what each would serve and where."""
    checks, rows = [], []
    cuda_ok, cuda_why = providers.get("CUDAExecutionProvider", (False, "ONNX Runtime is not available"))
    for ep in eng.endpoints.list_endpoints():
        for e in ep.config.served_entities:
            what = f"{e.entity_name}@{e.entity_alias}" if e.entity_alias else f"{e.entity_name} v{e.entity_version}"
            label = f"endpoint {ep.name} / {e.name}"
            try:
                mv = (eng.registry.get_model_version_by_alias(e.entity_name, e.entity_alias) if e.entity_alias
                      else eng.registry.get_model_version(e.entity_name, e.entity_version))
            except CairnError as exc:
                checks.append(Check(label, FAIL, f"{what}: {exc.message}",
                                    f"register the model, or `cairn endpoints update {ep.name}` to a version that exists"))
                rows.append([ep.name, e.name, what, "missing", e.workload_type, ""])
                continue
            if e.workload_type == "GPU" and cuda_ok:
                provider = "CUDAExecutionProvider"
            else:
                provider = "CPUExecutionProvider"
            rows.append([ep.name, e.name, what + ("" if not e.entity_alias else f" (v{mv.version})"), mv.status,
                         e.workload_type, provider])
            if mv.status != "READY":
                reason = f": {mv.status_message}" if mv.status_message else ""
                checks.append(Check(label, FAIL, f"{mv.name} version {mv.version} is {mv.status}{reason}",
                                    "wait for it to finish registering, or point the endpoint at a READY version"))
            elif e.workload_type == "GPU" and not cuda_ok:
                checks.append(Check(label, WARN, f"GPU workload will run on CPU: {cuda_why}",
                                    "install onnxruntime-gpu with CUDA and cuDNN (and a driver), or use CPU"))
            else:
                checks.append(Check(label, OK, f"{mv.name} version {mv.version} READY on {provider}"))
    return checks, rows


# -- the command --------------------------------------------------------------------------
def run_checks(data: str | None, host: str, port: int) -> tuple[list[Check], list[list], dict]:
    path = Path(data).expanduser() if data is not None else engine.default_data_dir()
    about = {"cairn": cairn_version(), "python": platform.python_version(), "platform": platform.platform(),
             "data_directory": str(path.resolve() if path.exists() else path)}
    checks = check_data_dir(path)
    eng = None
    if not any(c.status == FAIL and c.name == "data directory" for c in checks):
        eng, lmdb_check = open_store(path)
        checks.append(lmdb_check)
    provider_checks, providers = check_providers()
    checks += provider_checks
    checks.append(check_port(host, port))
    rows: list[list] = []
    if eng is not None:
        try:
            endpoint_checks, rows = check_endpoints(eng, providers)
            checks += endpoint_checks
        finally:
            eng.close()
    return checks, rows, about


def cmd_doctor(args: argparse.Namespace) -> int:
    checks, rows, about = run_checks(args.data, args.host, args.port)
    healthy = not any(c.status == FAIL for c in checks)
    if args.json:
        doc = {**about, "healthy": healthy, "checks": [asdict(c) for c in checks],
               "endpoints": [dict(zip(("endpoint", "served_entity", "serves", "status", "workload_type",
                                       "provider"), row)) for row in rows]}
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(doc), indent=2).decode() + "\n")
        return 0 if healthy else 1
    print(f"Cairn {about['cairn']} (Python {about['python']}, {about['platform']})")
    print(f"data directory: {about['data_directory']}\n")
    print(tables.render(["CHECK", "STATUS", "DETAIL"], [[c.name, c.status, c.detail] for c in checks], max_cell=200))
    if rows:
        print("\nEndpoints (what each would serve, and where)")
        print(tables.render(["ENDPOINT", "ENTITY", "SERVES", "STATUS", "WORKLOAD", "PROVIDER"], rows))
    todo = [c for c in checks if c.status in (WARN, FAIL) and c.fix]
    if todo:
        print("\nTo fix:")
        for c in todo:
            print(f"  [{c.status}] {c.name}: {c.fix}")
    print("\n" + ("healthy" if healthy else f"not healthy: {sum(c.status == FAIL for c in checks)} check(s) failed"))
    return 0 if healthy else 1


def add_command(sub) -> None:
    p = sub.add_parser("doctor", help="check this machine: data directory, store, ONNX Runtime providers, "
                       "port, endpoints")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"the address the server would bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port the server would bind (default {DEFAULT_PORT})")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=cmd_doctor, needs_store=False)
