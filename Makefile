# Two entry points for a fresh machine (see README "Quick start").
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench

$(BIN)/distillguard: pyproject.toml setup.py src/distillguard/ingest/_native/columnar.c
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/distillguard

setup: $(BIN)/distillguard

demo: setup
	$(BIN)/distillguard demo --out demo

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/ingest.py
