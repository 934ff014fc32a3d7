# Two commands matter: `make run` opens the workbench on the local stack and
# `make test` runs the tests. Both install what they need first.
PYTHON := .venv/bin/python

.PHONY: setup up run stop down status test unit bench

setup:
	bash scripts/setup.sh

up: setup
	$(PYTHON) -m pipeline.stack up

run: up
	$(PYTHON) -m streamlit run app.py

# Stop the pipeline jobs the workbench started, then the local services.
stop:
	$(PYTHON) -m pipeline.supervisor stop-all
	$(PYTHON) -m pipeline.stack down

down: stop

status:
	$(PYTHON) -m pipeline.stack status

test: setup
	bash scripts/test.sh

unit: setup
	bash scripts/test.sh tests/unit

bench: up
	$(PYTHON) bench/generator_throughput.py
	$(PYTHON) bench/producer_throughput.py
	$(PYTHON) bench/consumer_latency.py
