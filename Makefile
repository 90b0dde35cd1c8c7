# The two commands a newcomer runs (see README.md):
#   make demo   set everything up, deploy examples/example with git push, print its URL
#   make test   set everything up, run the whole test suite
#   make bench  set everything up, run every benchmark (~20 min, and ~25 more for the swarm's), write bench/results/
#   make swarm-demo   a 3-node swarm on this machine (scripts/swarm-rig.sh), the example deployed across it
.PHONY: setup demo swarm-demo swarm-down test unit integration bench clean

PYTEST = .venv/bin/pytest

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

swarm-demo: setup
	bash scripts/swarm-demo.sh

swarm-down:
	bash scripts/swarm-rig.sh down

test: setup
	TESTCONTAINERS_RYUK_DISABLED=true $(PYTEST) -ra

unit:
	$(PYTEST) -m "not integration" -q

integration: setup
	$(PYTEST) -m integration -ra

bench: setup
	.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/pip install -q -e '.[bench]'
	.venv/bin/python bench/run_all.py

clean:
	rm -rf .venv .demo .pytest_cache
