# Talkpay: `make run` starts the whole stack, `make test` proves it. Both set themselves up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/*.txt | cksum | cut -d' ' -f1)

.PHONY: install run reset test soak lint format bench load soak-load fuzz chaos migrate schedules shell clean

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## Start web :8000, worker, beat, Flower :5555 and the Stripe emulator :12111 (Ctrl-C stops all).
run: install
	$(PY) -m scripts.run

## Empty the database and the Stripe emulator together (and the embedded Redis's queue); stop `make run` first.
reset: install
	$(PY) -m scripts.reset

## Linters, migration check, then the whole test suite.
test: install lint
	$(PY) -m pytest -q -n 2 --dist loadfile

## The money state machine with many more examples (TALKPAY_SOAK_EXAMPLES, default 200); prints the count and seed.
soak: install
	@seed=$${SOAK_SEED:-$$(date +%s)}; echo "soak: seed $$seed (SOAK_SEED=$$seed make soak repeats it)"; \
	TALKPAY_HYPOTHESIS_PROFILE=soak $(PY) -m pytest -q -s -p no:cacheprovider --hypothesis-seed=$$seed \
		payouts/tests/test_money_state_machine.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	DJANGO_DEBUG=true $(PY) -m mypy
	DJANGO_DEBUG=true $(PY) manage.py makemigrations --check --dry-run

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## Benchmarks: print their figures (not part of `make test`).
bench: install
	$(PY) bench/emulator_bench.py
	@for script in bench/*_bench.py; do [ "$$script" = bench/emulator_bench.py ] || $(PY) $$script || exit 1; done

## Locust load test of booking to confirmation on a stack of its own (not part of `make test`):
## LOAD_ARGS="--users 40 --run-time 120", or "--steps 5,10,20,40 --run-time 30" for the knee.
load: install
	$(PY) -m scripts.load $(LOAD_ARGS)

## 10 minutes at 20 users: web and worker RSS growth after warm-up, open database connections.
soak-load: install
	$(PY) -m scripts.load --soak

## Schemathesis against a live server with the production settings: no 5xx, no undocumented status.
fuzz: install
	$(PY) -m scripts.fuzz

## Fault drills against a stack of its own (ports 8130/12130, redis 6391, database talkpay_chaos_stack):
## kills, Redis outages, Stripe faults, concurrent payouts, with checks after each (not part of `make test`).
chaos: install
	$(PY) -m scripts.chaos

migrate: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(PY) manage.py migrate

schedules: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(PY) manage.py setup_schedules

shell: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(PY) manage.py shell

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache
