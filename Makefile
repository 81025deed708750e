# Two commands set a fresh machine up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test bench venv clean

run: venv ## run intake, router and agents (embedded MongoDB unless MONGO_URL is set)
	$(PY) -m deploy.local

test: venv ## every test: unit, service (real broker and database), end-to-end, browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv ## end-to-end throughput and latency beside the bare broker and database; per-channel intake throughput beside a bare publish; routing core decisions/s at 100..100k agents; a 30-day reporting summary over 1M conversations; the reporting ingest rate; the desk in chromium with 100 conversations of 100 messages; the socket relay between two replicas; the broker's queues, memory and file descriptors per delivery topology at 1k..10k agents (a node of its own); a router standby's takeover at 10,000 agents; knowledge-base retrieval quality (recall@3, MRR) and query cost; surge detection's precision, recall, delay and false alerts on generated days
	$(PY) -m bench.e2e $(BENCH_ARGS)
	$(PY) -m bench.channels $(CHANNEL_BENCH_ARGS)
	$(PY) -m bench.core $(CORE_BENCH_ARGS)
	$(PY) -m bench.latency $(LATENCY_BENCH_ARGS)
	$(PY) -m bench.reporting $(REPORTING_BENCH_ARGS)
	$(PY) -m bench.desk $(DESK_BENCH_ARGS)
	$(PY) -m bench.relay $(RELAY_BENCH_ARGS)
	$(PY) -m bench.topology $(TOPOLOGY_BENCH_ARGS)
	$(PY) -m bench.failover $(FAILOVER_BENCH_ARGS)
	$(PY) -m bench.retrieval $(RETRIEVAL_BENCH_ARGS)
	$(PY) -m bench.surges $(SURGES_BENCH_ARGS)

.PHONY: clean-broker
clean-broker: venv ## leftovers of killed stacks on the broker: list them; NAMESPACE=ns removes one; CLEANUP_ARGS=--tests removes every idle test namespace
	$(PY) -m deploy.cleanup $(if $(NAMESPACE),--namespace $(NAMESPACE)) $(CLEANUP_ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .data
