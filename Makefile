# The two commands a newcomer needs: `make course` and `make test` (plus `make lab`).
# The first run creates .venv and installs; later runs reuse it and start in seconds.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# Reinstall only when the package definition or the tested pins change.
DEPS   := pyproject.toml constraints.txt

.PHONY: course test lab lint figures clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.course-installed: $(DEPS) | $(BIN)/python
	$(PIP) install -c constraints.txt -e ".[course]"
	@touch $@

$(VENV)/.dev-installed: $(DEPS) | $(BIN)/python
	$(PIP) install -c constraints.txt -e ".[dev]"
	@touch $(VENV)/.course-installed $@

## Run every notebook in notebooks/ in order, headless; executed copies + summary go to runs/course/.
course: $(VENV)/.course-installed
	$(BIN)/pddlib course --notebooks notebooks --out runs/course

## Unit tests, then every notebook under nbval in FAST mode.
test: $(VENV)/.dev-installed
	PDD_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest

## README's figures (images/*.png) from the course model in runs/ (trains it first if missing).
figures: $(VENV)/.course-installed
	MPLBACKEND=Agg $(BIN)/pddlib figures --out images

## JupyterLab on the notebooks.
lab: $(VENV)/.course-installed
	$(BIN)/jupyter lab notebooks

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check pddlib tests scripts

clean-venv:
	rm -rf $(VENV)
