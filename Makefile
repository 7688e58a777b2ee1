# Two entry points, each doing its own set-up on a fresh machine:
#   make book   build the Jupyter Book from the notebooks' stored outputs into _build/html
#               (make book-exec: re-execute every notebook first)
#   make test   run the unit tests and the notebooks (pytest --nbval)
# make test and make book-exec first run the data step: CIFAR-10 is downloaded into the default data
# folder (data/) when no data root holds it. Where it can't be (offline), the step says so in one line
# and they go on: the tests and notebooks that need CIFAR-10 are skipped, and book-exec uses the fallback.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: book book-exec test data bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

# The site from the notebooks' stored outputs (no notebook runs), warnings as errors. Sphinx copies
# book/_static only when some page is rebuilt: after editing only that folder, run `make clean book`.
book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

# The same site after re-executing every notebook in a fresh kernel, with ALEXNET_PROFILE and
# ALEXNET_DATA taken from the environment; the notebook files themselves are left unchanged.
book-exec: $(STAMP)
	$(BIN)/python -m alexnet_lib data || true
	mkdir -p _build
	sed 's/^  execute_notebooks: .*/  execute_notebooks: force/' _config.yml > _build/_config_exec.yml
	$(BIN)/jupyter-book build . --all --config _build/_config_exec.yml --warningiserror --nitpick --keep-going

# PYTEST_ARGS: what to test instead of everything, e.g. PYTEST_ARGS=tests/test_data.py
test: $(STAMP)
	$(BIN)/python -m alexnet_lib data || true
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# CIFAR-10 under the data root ($$ALEXNET_DATA, else data/), downloaded once when missing; fails offline.
data: $(STAMP)
	$(BIN)/python -m alexnet_lib data

bench: $(STAMP)
	$(BIN)/python bench/cpu.py

clean:
	rm -rf _build
