# ie-toolbox pipeline rules. Include from a local folder (InnerEye's "InnerEyeLocal"):
#     TOOLBOX ?= ../ie-toolbox
#     include $(TOOLBOX)/ie.mk
# then `make train MODEL=Prostate` uses that folder's settings.yml and configs/ and the toolbox's binaries.
# Every step reads and writes files of the run folder only, so each one can be rerun alone.
# GNU make splits file names at spaces (include, abspath, prerequisites): refuse such a folder with one clear line.
ifneq ($(words $(CURDIR)),1)
$(error ie-toolbox: the folder "$(CURDIR)" has a space in its path, which make's rules cannot handle; use a path without spaces (the ie-* tools themselves work anywhere))
endif
IE_TOOLBOX_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
IE_BIN ?= $(IE_TOOLBOX_DIR)/.build/release
MODEL ?= HelloWorld
ARGS ?=
SPLITS ?= 2
SETTINGS ?= $(firstword $(wildcard $(CURDIR)/settings.yml) $(IE_TOOLBOX_DIR)/settings.yml)
IE := --settings=$(SETTINGS)
# SLURM=1 submits instead of running here; CLUSTER=partition; NODES=K trains on K nodes (one MPI rank per node).
SLURM ?=
CLUSTER ?=
NODES ?=
SUBMIT = $(if $(CLUSTER),--cluster=$(CLUSTER)) $(if $(NODES),--num_nodes=$(NODES))
# THREADS=N and PRECISION=bf16 reach every step of a rule through the environment (OMP_NUM_THREADS and
# IENET_PRECISION, SPEC §12): they are engine options, not model parameters, so they do not belong in ARGS
# (ie-split takes model parameters only).
ifneq ($(THREADS),)
export OMP_NUM_THREADS := $(THREADS)
endif
ifneq ($(PRECISION),)
export IENET_PRECISION := $(PRECISION)
endif
# oneDNN's OpenMP threads sleep instead of spinning between convolutions (measured: fewer CPU-seconds per step
# on a shared machine, same results).
export OMP_WAIT_POLICY ?= passive

.PHONY: train evaluate report synth status crossval crossval-folds slurm-up slurm-down

# The built-in demo data (ie-synth) for models on the HelloWorld and HelloClassification datasets.
synth:
	@ds=$$($(IE_BIN)/ie-split $(IE) --model=$(MODEL) --print_dataset_folder 2>/dev/null || true); \
	if [ -n "$$ds" ] && [ ! -f "$$ds/dataset.csv" ]; then case "$$(basename "$$ds")" in \
	  HelloWorld) $(IE_BIN)/ie-synth --output_folder="$$ds";; \
	  HelloClassification) $(IE_BIN)/ie-synth --output_folder="$$ds" --kind=classification;; \
	  HelloClassification3D) $(IE_BIN)/ie-synth --output_folder="$$ds" --kind=classification --dimensions=3;; esac; fi

# ARGS as ie-train takes them: without ie-split's own options (--experiment names the run ie-split creates).
TRAIN_ARGS = $(filter-out --experiment=% --dataset=% --check,$(ARGS))

# New run: split, train, then evaluate the tested epochs. RUN is printed at the end.
# With SLURM=1 one job trains and evaluates (NODES=K: K whole nodes) and make returns at once.
train: synth
	@set -e; run=$$($(IE_BIN)/ie-split $(IE) --model=$(MODEL) $(ARGS)); \
	echo "run folder: $$run"; \
	if [ -n "$(SLURM)" ]; then $(IE_BIN)/ie-submit $(IE) --run="$$run" $(TRAIN_ARGS) $(SUBMIT); \
	  echo "submitted; follow with: make status RUN=$$run"; exit 0; fi; \
	$(IE_BIN)/ie-train $(IE) --run="$$run" $(TRAIN_ARGS); \
	$(MAKE) --no-print-directory -f $(IE_TOOLBOX_DIR)/ie.mk evaluate RUN="$$run" SETTINGS=$(SETTINGS); \
	echo "done: $$run"

# Inference, metrics, outliers, comparisons and the report for an existing run (its tested epochs, Val and Test):
# the one evaluation pipeline (SPEC §9), as the Slurm jobs of ie-submit and ie-crossval run it.
evaluate:
	@test -n "$(RUN)" || { echo "usage: make evaluate RUN=runs/<experiment>/<run_id>"; exit 2; }
	$(IE_BIN)/ie-evaluate $(IE) --run="$(RUN)"

# Regenerate the report of a finished run (cron friendly: touches nothing else).
report:
	@test -n "$(RUN)" || { echo "usage: make report RUN=runs/<experiment>/<run_id>"; exit 2; }
	$(IE_BIN)/ie-report --run="$(RUN)"

# Cross-validation (SPEC §10): a parent run with SPLITS folds (or the count ARGS gives; the folds made are the ones
# trained); the folds train and evaluate as parallel Make jobs
# (make -j2 crossval), then one step builds the ensemble, runs it on Val and Test and writes CrossValResults/.
# With SLURM=1 the same is submitted to Slurm (a job array + an afterok job) and make returns at once.
crossval: synth
	@set -e; run=$$($(IE_BIN)/ie-split $(IE) --model=$(MODEL) --number_of_cross_validation_splits=$(SPLITS) $(ARGS)); \
	echo "parent run: $$run"; \
	if [ -n "$(SLURM)" ]; then $(IE_BIN)/ie-submit $(IE) --run="$$run" $(SUBMIT); \
	  echo "submitted; follow with: make status RUN=$$run"; exit 0; fi; \
	folds=$$($(IE_BIN)/ie-crossval folds $(IE) --run="$$run" | wc -l); \
	$(MAKE) --no-print-directory -f $(IE_TOOLBOX_DIR)/ie.mk crossval-folds PARENT="$$run" SPLITS=$$folds SETTINGS=$(SETTINGS); \
	$(IE_BIN)/ie-crossval ensemble $(IE) --run="$$run"; \
	echo "done: $$run"

# The folds of an existing parent (PARENT=runs/<experiment>/<parent_id>), one Make job each: train, then the
# evaluation pipeline (which marks the fold completed), as a Slurm fold job does; --resume: a rerun continues each
# fold from its autosave.
crossval-folds: $(addprefix crossval-fold-,$(shell seq 0 $$(( $(SPLITS) - 1 ))))
crossval-fold-%:
	@test -n "$(PARENT)" || { echo "usage: make crossval-folds PARENT=runs/<experiment>/<parent_id> SPLITS=N"; exit 2; }
	$(IE_BIN)/ie-train $(IE) --run="$(PARENT)_$*" --resume $(FOLD_ARGS)
	$(IE_BIN)/ie-evaluate $(IE) --run="$(PARENT)_$*" --mark_completed

# Local Slurm cluster for trying SLURM=1 / ie-submit (root; installs Debian's slurm and Open MPI when missing). One node, or
# NODES=K nodes played by this machine (its CPUs split between them) for multi-node jobs.
slurm-up:
	SLURM_LOCAL_NODES=$(or $(NODES),1) $(IE_TOOLBOX_DIR)/tools/start-local-slurm.sh
slurm-down:
	$(IE_TOOLBOX_DIR)/tools/stop-local-slurm.sh

# A run's (and its cross-validation folds') state, Slurm job, epoch and last loss.
status:
	@test -n "$(RUN)" || { echo "usage: make status RUN=runs/<experiment>/<run_id>"; exit 2; }
	@$(IE_BIN)/ie-status "$(RUN)"
