# The README's two commands: `make run` and `make test`. Each builds .venv on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The development venv takes ONNX Runtime's GPU build where it exists (its CUDA provider
# is tested when a GPU is present; it runs on CPU everywhere else), plain onnxruntime elsewhere.
ORT_EXTRA ?= $(if $(filter Linux-x86_64,$(shell uname -s)-$(shell uname -m)),gpu,cpu)

.PHONY: run test bench bench-quick bench-features-venv lock package clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,features,$(ORT_EXTRA)]'
	touch $(STAMP)

# `cairn up` chooses by the terminal: in one, the server and the terminal UI in one
# process (quitting the UI stops both); without one (CI, a service), the server only.
run: $(STAMP)
	$(BIN)/cairn up

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/bundles.py
	$(BIN)/python bench/features.py

bench-quick: $(STAMP)
	$(BIN)/python bench/tracking.py --quick
	$(BIN)/python bench/server.py --quick
	$(BIN)/python bench/registry.py --quick
	$(BIN)/python bench/serving.py --quick
	$(BIN)/python bench/bundles.py --quick
	$(BIN)/python bench/features.py --quick

# Offline bundles (packaging/build.py): dist/cairn-<version>-{cpu,gpu,cpu-aarch64}-linux-<arch>.tar.gz
# and, unless EXE=0, the PyInstaller one-directory build of the cpu variant. They install
# exactly packaging/lock-<variant>.txt; `make lock` re-resolves it after a dependency change.
EXE ?= 1
VARIANT ?= all
package: $(STAMP)
	$(BIN)/python packaging/build.py --variant $(VARIANT) $(if $(filter 1,$(EXE)),--exe)

lock: $(STAMP)
	$(BIN)/python packaging/lock.py

clean:
	rm -rf $(VENV) build dist *.egg-info

# Feast for bench/features.py, in its own venv: it pins pandas and pyarrow versions that
# Cairn's do not share. bench/features.py finds it here (or at $$FEAST_PYTHON).
bench-features-venv:
	$(PYTHON) -m venv .feast-venv
	.feast-venv/bin/pip install --quiet feast
