# Two-command set-up: `make demo` and `make test` create .venv, install the tested
# torch (CPU build, pinned here: an unpinned torch pulls a multi-GB CUDA build) and
# this package with its test extra, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP   = $(VENV)/.fusioncli-installed

.PHONY: demo test test-oldest setup clean

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
	$(BIN)/python -m pytest -q -p no:cacheprovider --doctest-modules fusioncli  # the docstrings' examples

# the oldest torch the whole suite runs on (pyproject.toml declares the range from it): a PyPI
# build, several GB with its CUDA libraries, run on the CPU
OLDEST_TORCH = torch==2.4.1

test-oldest:
	$(MAKE) test VENV=.venv-oldest TORCH=$(OLDEST_TORCH)

clean:
	rm -rf $(VENV) .venv-oldest build dist *.egg-info
