# Two-command set-up: `make demo` and `make test` create .venv, install the tested
# torch (CPU build, pinned here: an unpinned torch pulls a multi-GB CUDA build) and
# this package with its test, plot and deploy extras, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP   = $(VENV)/.fusioncli-installed

.PHONY: demo test test-oldest setup clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" hatchling editables
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[test,plot,deploy]"
	touch $(STAMP)

setup: $(STAMP)

# about 7 s after the set-up here: five blocks timed, a plot, a neck with three nodes, JSON piped
demo: $(STAMP)
	$(BIN)/fusion compare add concat gated aff se --in 64x32x32 --in 64x32x32 --out 64 --threads 1 --min-time 0.1 --plot demo-compare.png
	$(BIN)/fusion compare resnet50-fpn --node add --node aff --node bifpn --no-time
	$(BIN)/fusion inspect neck:fpn --backbone resnet18 --image 256 --no-time --json | $(BIN)/python -c "import json, sys; r = json.load(sys.stdin)['reports'][0]; print(r['name'], 'params', r['params']['total'], 'MACs', r['cost']['macs'])"

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
