# deepres_plugin — set-up and checks. `make demo` and `make test` are all a new user needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# ONE pip resolve for everything: with TensorFlow in the same resolve, scipion keeps
# numpy 1.26 / matplotlib 3.8 / scipy <= 1.10 (see wiki/Installation.md)
PIP_ARGS := "scipion-pyworkflow>=3.11" "scipion-em>=3.11" tensorflow -e ".[test]"
PYTEST   := $(BIN)/pytest

.PHONY: venv demo test test-all bench clean

venv: $(STAMP)

# The stamp is written only after a successful install; an existing working venv with the
# stamp is reused as is (delete .venv/.installed to force a new resolve).
$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_ARGS)
	@touch $(STAMP)

demo: venv
	$(BIN)/deepres demo

# pytest exit code 5 = no tests collected: a failure here, never a silent pass
test: venv
	@$(PYTEST) -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

test-all: venv
	@$(PYTEST) -q -m "slow or not slow"; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test-all: pytest collected no tests" >&2; fi; exit $$rc

bench: venv
	@set -e; found=0; for f in benchmarks/*.py; do \
	  [ -f "$$f" ] || continue; found=1; echo "== $$f"; $(BIN)/python "$$f"; done; \
	  if [ $$found -eq 0 ]; then echo "make bench: no benchmarks/*.py" >&2; exit 1; fi

clean:
	rm -rf demo_output bench_output .pytest_cache build dist
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
