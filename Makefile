# Two entry points, each doing its own set-up on a fresh machine:
#   make book   build the Jupyter Book from the notebooks' stored outputs into _build/html
#               (make book-exec: re-execute every notebook first)
#   make test   run the unit tests and the notebooks (pytest --nbval)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: book book-exec test bench clean

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
	mkdir -p _build
	sed 's/^  execute_notebooks: .*/  execute_notebooks: force/' _config.yml > _build/_config_exec.yml
	$(BIN)/jupyter-book build . --all --config _build/_config_exec.yml --warningiserror --nitpick --keep-going

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/cpu.py

clean:
	rm -rf _build
