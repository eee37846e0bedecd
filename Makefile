# The two commands a newcomer needs: `make run` (whole system locally) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check bootstrap bench clean

run: $(STAMP)
	$(VENV)/bin/activetrace up

test: bootstrap
	scripts/check

check: $(STAMP)
	scripts/check

bootstrap:
	scripts/bootstrap

bench: $(STAMP)
	$(PY) -m bench.neighbour && $(PY) -m bench.expr && $(PY) -m bench.router && $(PY) -m bench.transport && $(PY) -m bench.server && $(PY) -m bench.proxy && $(PY) -m bench.tracing && $(PY) -m bench.instructions && $(PY) -m bench.ingest

$(STAMP): pyproject.toml
	scripts/bootstrap --python-only

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dataplane/tracing/_wire.*.so dataplane/_http1.*.so
