# The compendium's two commands (README "Set-up"):
#   make reproduce   creates .venv with pinned dependencies, then `dvc repro` rebuilds every figure
#   make test        creates .venv, then runs unit tests, doctests, nbval over every notebook
#                    and the pipeline test (dvc repro on the smoke profile in a temporary copy)
#   make lab         JupyterLab on this environment, bound to 127.0.0.1, state under build/cache
#   make strip       strips outputs / execution counts / editor metadata from the source notebooks
#
# CUDA: make reproduce TORCH_INDEX=https://download.pytorch.org/whl/cu128
#       (any index / spec pip understands; the default installs torch==2.13.0 as pip resolves it:
#        the CPU wheel on this project's machines).

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=

BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site-cache
export MPLBACKEND := Agg
export MPLCONFIGDIR := $(CURDIR)/build/cache/matplotlib
export JUPYTER_CONFIG_DIR := $(CURDIR)/build/cache/jupyter/config
export JUPYTER_DATA_DIR := $(CURDIR)/build/cache/jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/build/cache/jupyter/runtime
export IPYTHONDIR := $(CURDIR)/build/cache/ipython
export PYTHONHASHSEED := 0
export TQDM_MININTERVAL := 5
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# one "[stage] cell i/n, elapsed" line per interval while a notebook stage runs (0: off)
export BILEVEL_PROGRESS_INTERVAL ?= 30
LAB_PORT    ?= 8888
# Bitwise-reproducible CPU numerics (bilevel.runtime.REPRODUCIBLE_ENV; measured in data/results/TOLERANCES.md):
# torch's ATen, MKL, oneDNN and numpy's OpenBLAS all take their AVX2 code paths on every x86-64 CPU with AVX2.
export ATEN_CPU_CAPABILITY := avx2
export MKL_CBWR := AVX2,STRICT
export ONEDNN_MAX_CPU_ISA := AVX2
export OPENBLAS_CORETYPE := Haswell
export OMP_WAIT_POLICY := PASSIVE

.PHONY: reproduce verify deps test venv benchmark clean-env lock lab strip print-env

# State folders exist before any kernel starts (IPython warns once per kernel about a missing one).
CACHE_DIRS := $(MPLCONFIGDIR) $(IPYTHONDIR) $(JUPYTER_CONFIG_DIR) $(JUPYTER_DATA_DIR) $(JUPYTER_RUNTIME_DIR)
$(CACHE_DIRS):
	mkdir -p $@

# REPRO_ARGS: e.g. make reproduce REPRO_ARGS="-f paper001_quadratic_figures" (force a rerun of one stage)
# When stages ran (dvc.lock differs from git's), the machine that produced the results is recorded
# beside them (data/results/machine.json): `make verify` applies the measured cross-vendor
# tolerances when the committed results come from another CPU vendor.
reproduce: $(VENV)/.installed | $(CACHE_DIRS)
	dvc repro $(REPRO_ARGS)
	dvc status
	@git diff --quiet -- dvc.lock 2>/dev/null || python -m bilevel.repro machine --write data/results/machine.json

# After a reproduce: compare every regenerated table under data/results/ with the committed one
# (git HEAD) and every claim verdict; report in build/reproduction-report.md; non-zero if anything moved.
verify: $(VENV)/.installed | $(CACHE_DIRS)
	python -m bilevel.repro verify --rev $(or $(REV),HEAD)

# Check (or, with `make deps WRITE=1`, rewrite) each stage's project-module deps in dvc.yaml.
deps: $(VENV)/.installed
	python -m bilevel.repro deps $(if $(WRITE),--write)

test: $(VENV)/.installed | $(CACHE_DIRS)
	python -m pytest $(PYTEST_ARGS)

# MPLBACKEND is unset for the server so that its kernels use ipykernel's inline backend
# (figures inline). Token authentication as usual; the URL with the token is printed.
lab: $(VENV)/.installed | $(CACHE_DIRS)
	env -u MPLBACKEND jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) \
	  --ServerApp.root_dir=$(CURDIR) \
	  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# For dvc / papermill run by hand: eval "$$(make -s print-env)" gives the pinned runtime and the
# in-repository state that `make reproduce` uses (without it, numbers move in the last bit).
PRINT_ENV := DVC_NO_ANALYTICS DVC_SITE_CACHE_DIR MPLBACKEND MPLCONFIGDIR JUPYTER_CONFIG_DIR JUPYTER_DATA_DIR \
  JUPYTER_RUNTIME_DIR IPYTHONDIR PYTHONHASHSEED ATEN_CPU_CAPABILITY MKL_CBWR ONEDNN_MAX_CPU_ISA \
  OPENBLAS_CORETYPE OMP_WAIT_POLICY BILEVEL_PROGRESS_INTERVAL
print-env:
	@$(foreach v,$(PRINT_ENV),echo "export $(v)='$($(v))'";) echo "export PATH='$(BIN):'\"\$$PATH\""

strip: $(VENV)/.installed
	python -m bilevel.notebook strip notebooks/*/*.ipynb

benchmark: $(VENV)/.installed
	python -m benchmarks.run

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import torch, bilevel; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
	touch $@

lock: $(VENV)/.installed
	{ head -2 requirements/lock.txt; $(BIN)/python -m pip freeze | grep -v -E '^(torch==|-e |bilevel)'; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

clean-env:
	rm -rf $(VENV)
