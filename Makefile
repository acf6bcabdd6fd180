# ie-toolbox: build, test, demo and benchmark targets. The pipeline rules live in ie.mk so that a user's
# local folder (with its own settings.yml and configs/) can include them with two lines.
SHELL := /bin/bash
# GNU make splits file names at spaces (include, abspath, prerequisites): refuse such a folder with one clear line.
ifneq ($(words $(CURDIR)),1)
$(error ie-toolbox: the folder "$(CURDIR)" has a space in its path, which make's rules cannot handle; use a path without spaces (the ie-* tools themselves work anywhere))
endif
TOOLBOX_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
include $(TOOLBOX_DIR)/ie.mk

# Debian packages the toolbox builds against or runs (gnuplot for plots).
APT_PACKAGES := libnifti2-dev libniftiio-dev libznz-dev zlib1g-dev libopenblas-dev libpng-dev libcsv-dev gnuplot-nox \
                python3 python3-venv python3-pip openmpi-bin libopenmpi-dev libdnnl-dev
VENV := $(TOOLBOX_DIR)/.venv

.PHONY: deps test-deps build build-debug test demo bench clean-runs help

help:
	@echo "make deps        install missing Debian packages (needs root)"
	@echo "make build       release build of every ie-* tool into .build/release"
	@echo "make demo        deps + build + train HelloWorld on the built-in synthetic data"
	@echo "make test        deps + test python references + the whole test suite"
	@echo "make bench       speed figures as ratios to their peers (sgemm peak, PyTorch, MONAI, SimpleITK)"
	@echo "make bench-torch install the peers of make bench into .venv-torch (torch, monai, SimpleITK)"
	@echo "make train MODEL=Name [ARGS='--num_epochs=3']   the full pipeline for one model"
	@echo "make report RUN=runs/<experiment>/<run_id>       regenerate a run's report only"
	@echo "make evaluate RUN=runs/<experiment>/<run_id>     inference, metrics, outliers and report of a trained run"
	@echo "make -j2 crossval MODEL=Name SPLITS=N             k-fold cross-validation, folds as parallel jobs, then the ensemble"
	@echo "make train|crossval ... SLURM=1 [CLUSTER=p] [NODES=K]   submit to Slurm instead (K nodes: one MPI rank each)"
	@echo "make status RUN=runs/<experiment>/<run_id>       state, Slurm job, epoch and last loss of a run and its folds"
	@echo "make slurm-up [NODES=K] / make slurm-down         a local Slurm cluster on this machine (root)"

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then echo "deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: missing Debian packages:$$missing"; echo "      run as root: apt-get install$$missing"; exit 1; fi

# The python packages are test oracles only (nibabel, scipy, scikit-learn, nbformat, safetensors, SimpleITK).
test-deps: deps
	@test -x $(VENV)/bin/python3 || python3 -m venv $(VENV)
	@$(VENV)/bin/python3 -c "import numpy, scipy, nibabel, sklearn, nbformat, safetensors, SimpleITK, pandas, matplotlib, nbconvert, ipykernel, PIL" 2>/dev/null || \
	  $(VENV)/bin/python3 -m pip install -q --disable-pip-version-check -r $(TOOLBOX_DIR)/tests/requirements.txt
	@$(VENV)/bin/python3 -m jupyter kernelspec list 2>/dev/null | grep -q '^ *python3 ' || \
	  $(VENV)/bin/python3 -m ipykernel install --sys-prefix

build: deps
	cd $(TOOLBOX_DIR) && swift build -c release

test: test-deps
	cd $(TOOLBOX_DIR) && python3 tools/check-package-deps.py && swift build -c release && swift build --build-tests
	cd $(TOOLBOX_DIR) && PATH=$(VENV)/bin:$$PATH IE_BIN=$(TOOLBOX_DIR)/.build/release swift test --skip-build

demo: build
	$(MAKE) -f $(TOOLBOX_DIR)/Makefile train MODEL=HelloWorld

# Every figure beside its peer measured in the same run (sgemm peak with the machine's best kernels; PyTorch, MONAI
# and SimpleITK from .venv-torch when `make bench-torch` installed them), as ratios: bench/run_bench.py.
bench: build
	cd $(TOOLBOX_DIR) && PEER_PYTHON=$(TORCH_VENV)/bin/python3 python3 bench/run_bench.py $(BENCH_ARGS)
	@if command -v mpirun >/dev/null && ldd $(TOOLBOX_DIR)/.build/release/ie-bench | grep -q libmpi; then \
	  cd $(TOOLBOX_DIR) && mpirun --allow-run-as-root --oversubscribe -np 2 ./.build/release/ie-bench --allreduce; \
	else echo "allreduce benchmark skipped: needs openmpi-bin and a build with libopenmpi-dev"; fi

# The peers of `make bench` (PyTorch, MONAI, SimpleITK, nibabel) go into their own venv, never into the toolbox's
# environment or `make test`. PyPI's torch is a CUDA build (~5 GB with its nvidia wheels); it runs on the CPU.
# The AAL metrics figure needs Debian's mricron-data (a real brain MRI and the AAL atlas), installed here as root.
TORCH_VENV := $(TOOLBOX_DIR)/.venv-torch
PEER_PACKAGES := torch monai SimpleITK nibabel numpy safetensors
.PHONY: bench-torch
bench-torch:
	@test -x $(TORCH_VENV)/bin/python3 || python3 -m venv $(TORCH_VENV)
	@$(TORCH_VENV)/bin/python3 -c "import torch, monai, SimpleITK, nibabel, numpy, safetensors" 2>/dev/null || \
	  $(TORCH_VENV)/bin/python3 -m pip install -q --disable-pip-version-check $(PEER_PACKAGES)
	@test -f /usr/share/mricron/templates/aal.nii.gz || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get install -y -q mricron-data; \
	    else echo "the AAL metrics figure needs mricron-data: sudo apt-get install mricron-data"; fi; }
	@echo "peers installed in $(TORCH_VENV): run make bench"

# The install list, for tools/check-install-list.sh (which `make test` runs through the test suite).
.PHONY: print-apt-packages
print-apt-packages:
	@echo $(APT_PACKAGES)

# Seeded mutation fuzzing of every parser a user's file reaches (NIfTI, safetensors, dataset.csv, YAML config,
# metrics.csv), FUZZ_SECONDS per parser. A crash, trap or allocation past 4 GiB is a finding: its input is kept in
# fuzz/findings/ and the target fails.
FUZZ_SECONDS ?= 10
FUZZ_SEED ?= 1
.PHONY: fuzz
fuzz: build
	@mkdir -p $(TOOLBOX_DIR)/fuzz/findings
	@cd $(TOOLBOX_DIR) && if ./.build/release/ie-fuzz --seconds=$(FUZZ_SECONDS) --seed=$(FUZZ_SEED); then \
	  echo "fuzz: no finding"; else \
	  for f in fuzz/findings/current-*; do [ -e "$$f" ] && mv "$$f" "fuzz/findings/crash-$${f##*current-}-$$(date +%s)"; done; \
	  echo "fuzz: FINDING, input kept in fuzz/findings/ (rerun: .build/release/ie-fuzz --seed=$(FUZZ_SEED))"; exit 1; fi

# The kernels, the file parsers and the signal/shutdown paths under AddressSanitizer and ThreadSanitizer (own build
# folders, debug). Leak reports are off: the ones seen come from Foundation's Process and XCTest, not the toolbox.
SANITIZE_TESTS := TorchCheckpointHostileTests|WinogradConvTests|ImplicitWeightGradientTests|ConvLedgerTests|DNNLSubPixelTests|SubPixelAdjointTests|MetricsLabelMapTests|PNGReadingTests|CheckpointTests|DirectConvTests|DNNLConvTests|ConvTests|ElementwiseLayerTests|LossTests|UNet3DTests|NIfTIHostileTests|NIfTIReadTests|MetricsAnalyticTests|MetricsDistanceTransformTests|HostileStreamAndNameTests|testSigtermStopsWithExit143|testKilledTrainingResumes|testCtrlCStopsLikeSIGTERM|AtomicFileTests|testTrainingOverARunsCheckpointsNeedsResume
.PHONY: sanitize
sanitize: test-deps
	cd $(TOOLBOX_DIR) && for s in address thread; do \
	  swift build --build-tests --sanitize=$$s --build-path .build-$$s && \
	  ASAN_OPTIONS=detect_leaks=0 TSAN_OPTIONS=halt_on_error=1 PATH=$(VENV)/bin:$$PATH IE_BIN=$(TOOLBOX_DIR)/.build-$$s/debug \
	    swift test --skip-build --sanitize=$$s --build-path .build-$$s --filter '$(SANITIZE_TESTS)' || exit 1; \
	done
