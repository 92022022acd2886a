# The two commands a newcomer needs: `make course` and `make test` (plus `make lab`).
# The first run creates .venv and installs; later runs reuse it and start in seconds.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# Reinstall only when the package definition or the tested pins change.
DEPS   := pyproject.toml constraints.txt

.PHONY: course test test-browser colab-check gpu-check lab student lint figures clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, from PyTorch's CPU index on a Linux machine without a GPU (PyPI's Linux wheel
# is a CUDA build of several GB); scripts/torch_index.py decides, PDD_TORCH_INDEX overrides.
$(VENV)/.torch-installed: constraints.txt scripts/torch_index.py | $(BIN)/python
	@index="$$($(BIN)/python scripts/torch_index.py)"; \
	if [ -n "$$index" ]; then $(PIP) install --index-url "$$index" "$$(grep '^torch==' constraints.txt)"; fi
	@touch $@

$(VENV)/.course-installed: $(DEPS) $(VENV)/.torch-installed | $(BIN)/python
	$(PIP) install -c constraints.txt -e ".[course]"
	@touch $@

$(VENV)/.dev-installed: $(DEPS) $(VENV)/.torch-installed | $(BIN)/python
	$(PIP) install -c constraints.txt -e ".[dev]"
	@touch $(VENV)/.course-installed $@

## Run every notebook in notebooks/ in order, headless; executed copies + summary go to runs/course/.
course: $(VENV)/.course-installed
	$(BIN)/pddlib course --notebooks notebooks --out runs/course

## Unit tests, then every notebook under nbval in FAST mode.
test: $(VENV)/.dev-installed
	PDD_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest

$(VENV)/.browser-installed: $(DEPS) $(VENV)/.dev-installed
	$(PIP) install -c constraints.txt -e ".[browser]"
	@touch $@

## JupyterLab in headless Chromium: notebooks 02, 04 and 05 run, widgets render (needs chromium).
test-browser: $(VENV)/.browser-installed
	$(BIN)/python -m pytest tests_browser -v -p no:cacheprovider

## The notebooks' Colab setup line on Colab's package versions, then every notebook (FAST).
colab-check: $(VENV)/.dev-installed
	$(BIN)/python scripts/colab_check.py

## On a CUDA machine: the GPU tests, every notebook (FAST, then 03/08/09 for real), sampling, eval,
## replication and the copy guard, with timings in runs/gpu-check/gpu_check.json. No GPU: a self-test.
gpu-check: $(VENV)/.dev-installed
	MPLBACKEND=Agg $(BIN)/python scripts/gpu_check.py

## README's figures (images/*.png) from the reference model shipped in pddlib/weights, the course model beside it.
figures: $(VENV)/.course-installed
	MPLBACKEND=Agg $(BIN)/pddlib figures --model reference --beside course --out images

## JupyterLab on the student edition (notebooks/student/); the solutions are one folder up.
lab: $(VENV)/.course-installed
	$(BIN)/jupyter lab --notebook-dir=notebooks --LabApp.default_url=/lab/tree/student

## The student edition: notebooks/student/, every solution replaced by a stub with its hint.
student: $(VENV)/.course-installed
	$(BIN)/python scripts/student_edition.py

## ruff on pddlib, tests, scripts and benchmarks (the rules are in pyproject.toml).
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check pddlib tests scripts benchmarks

clean-venv:
	rm -rf $(VENV)
