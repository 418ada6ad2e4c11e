# Two-command set-up: `make demo` and `make test` create .venv, install the tested
# torch (CPU build, pinned here: an unpinned torch pulls a multi-GB CUDA build) and
# this package with its test extra, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP   = $(VENV)/.fusioncli-installed

.PHONY: demo test setup clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" hatchling editables
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[test,plot]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/fusion compare presets/*.toml --min-time 0.2

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info
