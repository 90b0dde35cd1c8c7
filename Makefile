# The two commands a newcomer runs (see README.md):
#   make demo   set everything up, deploy examples/example with git push, print its URL
#   make test   set everything up, run the whole test suite
.PHONY: setup demo test unit integration clean

PYTEST = .venv/bin/pytest

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	TESTCONTAINERS_RYUK_DISABLED=true $(PYTEST) -ra

unit:
	$(PYTEST) -m "not integration" -q

integration: setup
	$(PYTEST) -m integration -ra

clean:
	rm -rf .venv .demo .pytest_cache
