"""The frozen `cairn` executable's entry point (PyInstaller runs this as __main__).

Besides the CLI, it answers `cairn -m MODULE ARGS...` as `python -m` would: Cairn
re-runs itself as `sys.executable -m cairn.app.serving.modelserver ...` to prepare a model
folder in a child process (app/serving/modelserver.py), and in the frozen app
sys.executable is this program, not a Python interpreter.
"""
import multiprocessing
import runpy
import sys


def _run() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0  # a module that ends with sys.exit(n) has already exited with n
    from cairn.cli.main import main

    return main()


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a library that spawns workers re-enters here
    sys.exit(_run())
