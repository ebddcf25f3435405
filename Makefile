# calllab: `make demo` places one real call end to end; `make test` runs the test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := kamailio espeak-ng tshark sox chromium curl baresip-core gcc libc6-dev
NUMBER ?= +79991234567

.PHONY: setup apt venv demo test test-quick lab report lint bench bench-call bench-analysis bench-jitter bench-codecs bench-capacity bench-peers clean

setup: apt venv

apt:
	@bash scripts/apt-deps.sh $(APT_PACKAGES)

venv: $(BIN)/calllab

$(BIN)/calllab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

NOTEBOOK ?= notebooks/01_first_call.ipynb

demo: setup
	$(BIN)/calllab call $(NUMBER) --duration 5

test: setup lint
	$(BIN)/pytest -q

test-quick: setup
	$(BIN)/pytest -q -m "not slow"

lab: setup
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --notebook-dir=notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

report: setup
	$(BIN)/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=300 \
		--output-dir captures $(NOTEBOOK)
	@echo "report: captures/$$(basename $(NOTEBOOK) .ipynb).html"

lint: venv
	$(BIN)/ruff check lab tests bench
	$(BIN)/ruff format --check lab tests bench
	$(BIN)/mypy lab

bench: bench-call bench-analysis bench-jitter bench-codecs

bench-call: setup
	$(BIN)/python bench/call_path.py

bench-analysis: setup
	$(BIN)/python bench/analysis.py

bench-jitter: setup
	$(BIN)/python bench/jitter_buffer.py

bench-codecs: setup
	$(BIN)/python bench/codecs.py

# 1, 4, 8 and 16 full-chain calls at once: gateway CPU per call, PESQ, peak RSS per process.
bench-capacity: setup
	$(BIN)/python bench/capacity.py

# calllab's gateway beside Janus's SIP plugin; Janus is installed for this bench only.
PEERS_ARGS ?= --concurrency 1 4
bench-peers: setup
	@bash scripts/apt-deps.sh janus
	$(BIN)/python bench/peers.py $(PEERS_ARGS)

clean:
	rm -rf .calllab
