# Every target sets itself up: it creates .venv when missing and installs the pinned deps.
# ACCEL picks the jax build: cpu (default), cuda (jax[cuda12]) or tpu (jax[tpu]); e.g.
# `make setup ACCEL=cuda`, then `make bench`, `make demo`, `make gpu-check` run on the GPU.
# The venv remembers its ACCEL (.venv/.accel), so later targets keep that jax build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ACCEL ?= $(or $(shell cat $(VENV)/.accel 2>/dev/null),cpu)
ifeq ($(filter $(ACCEL),cpu cuda tpu),)
$(error unknown ACCEL '$(ACCEL)'; valid: cpu, cuda, tpu)
endif
comma := ,
EXTRAS := dev$(if $(filter-out cpu,$(ACCEL)),$(comma)$(ACCEL))
STAMP := $(VENV)/.installed-$(ACCEL)-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: setup test test-slurm demo lint format bench gpu-check clean

# pip installs uv (pinned), and uv the package with the pinned set that pip would install: from
# empty caches the set-up took 20 s instead of 69 s (BUILD_NOTES.md, "Tests and CI time").
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing else writes the
# .pyc files, and every launch of Python would compile jax, flax and the rest again (2 s).
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c requirements.lock uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -c requirements.lock -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-* && echo $(ACCEL) > $(VENV)/.accel && touch $@

setup: $(STAMP)

# The suite is CPU-only, also on a GPU host; the slowest 15 tests are listed (CI keeps under
# 20 minutes on 2 cores). Slowest modules first: tests/conftest.py, SLOWEST_FIRST.
# No suite-wide JAX compilation cache: one shared by every test process measured 1313 s for
# pytest in a fresh-clone CI (BUILD_NOTES.md, "Tests and CI time"); tests/train keeps its own
# (tests/conftest.py, compilation_cache_dir).
TEST_ENV := JAX_PLATFORMS=cpu
test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# The tests marked `slurm` against a one-node SLURM cluster that this target brings up on this
# machine (experiments/slurm/local_cluster.sh: installs slurm-wlm and munge where missing, as
# root or through sudo) and stops afterwards. docs/cluster.md has their cost.
test-slurm: $(STAMP)
	bash experiments/slurm/local_cluster.sh up
	$(TEST_ENV) $(PY) -m pytest -m slurm --durations=5 tests/slurm; \
	status=$$?; bash experiments/slurm/local_cluster.sh down; exit $$status

DEMO_DIR ?= runs/demo
DEMO := $(PY) experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p,demo \
	--workdir=$(DEMO_DIR)
PIN = $(if $(shell command -v taskset),taskset -c $(1))

# The AT and the NAT train side by side, one core each (4.5 min instead of 5.6 on 2 cores,
# README.md, "How long the full configs take"); the last command resumes both and decodes; then a predict
# command for each model folder it made ($(DEMO_DIR)/at, $(DEMO_DIR)/nat).
demo: $(STAMP)
	@mkdir -p $(DEMO_DIR)
	@echo "make demo: the AT trains here, the NAT beside it (log: $(DEMO_DIR)/nat_train.log)"
	@$(call PIN,1) $(DEMO) --config.train_only=nat > $(DEMO_DIR)/nat_train.log 2>&1 & nat=$$!; \
	$(call PIN,0) $(DEMO) --config.train_only=at; at=$$?; wait $$nat; nat=$$?; \
	test $$nat = 0 || echo "make demo: the NAT's training failed; see $(DEMO_DIR)/nat_train.log"; \
	test $$at = 0 -a $$nat = 0
	$(DEMO)
	@echo; echo "Try the trained models (any word; more inputs on stdin, one a line):"
	@for d in $(DEMO_DIR)/*/checkpoints; do if test -d "$$d"; then \
	  echo "  $(PY) experiments/predict.py --workdir=$${d%/checkpoints} --input=attention"; fi; done

bench: $(STAMP)
	$(PY) -m pip install -q -c requirements.lock -e '.[$(EXTRAS),bench]'
	$(PY) benchmarks/attention.py
	$(PY) benchmarks/long_sequences.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/decoding.py $(if $(wildcard runs/g2p/at/checkpoints),--run_dir=runs/g2p)
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/summary.py

# Devices, the attention and long-sequence benchmarks, 300 bfloat16 steps of g2p.py:at and
# the decoding benchmark, in a few minutes on an accelerator (benchmarks/gpu_check.py).
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests experiments benchmarks
	$(VENV)/bin/ruff format --check src tests experiments benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests experiments benchmarks
	$(VENV)/bin/ruff format src tests experiments benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
