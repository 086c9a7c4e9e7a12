# common.mk — the stages every method's pipeline shares; included by moelora.mk, mingmoe.mk, sparsedoctor.mk.
#
#   make -f pipelines/mingmoe.mk BASE=/models/Qwen2.5-7B-Instruct DATA=mydata OUT=out/mingmoe [DEVICE=cpu]
#
# DATA holds   train/TASK.{jsonl,json,csv}   one file per task (the file name is the task name), and
#              exam/BENCH/*                  exam files in their benchmark's format (BENCH: cmmlu, mmlu, medqa,
#                                            medmcqa, cmb, cmexam; the directory name is the --exam argument)
# OUT gets     tokens/ mixed.mpk shards/ run/ exam/ pred/ report.md report.json scores.svg
# Every stage is a file target, so make redoes only what changed: a new task file re-tokenizes that task and
# everything downstream; new hyperparameters (they are kept in OUT/train.flags) retrain but do not re-shard.
# The base model's untrained predictions are the paired baseline of the report.

BASE ?=
DATA ?=
OUT ?= out/$(METHOD)
DEVICE ?= cpu
BIN ?=
TEMPLATE ?= chatml
TEMPERATURE ?= 2
SEED ?= 1
SEQ_LEN ?= 2048
VALID ?= 0.02
EVAL_MODE ?= loglik
EXAM_FLAGS ?=
# Settings of the run beside the method's own (the method files set METHOD and METHOD_FLAGS).
TRAIN_FLAGS ?=

ifeq ($(strip $(BASE)),)
$(error BASE= is required: a Hugging Face model directory)
endif
ifeq ($(strip $(DATA)),)
$(error DATA= is required: a directory with train/ and exam/)
endif
ifneq ($(DEVICE),cpu)
$(error DEVICE=$(DEVICE): this build trains on the CPU only; the CUDA backend is not available yet)
endif

P := $(if $(BIN),$(BIN)/,)
TASK_FILES := $(sort $(wildcard $(DATA)/train/*.jsonl $(DATA)/train/*.json $(DATA)/train/*.csv))
TASKS := $(basename $(notdir $(TASK_FILES)))
TOKENS := $(TASKS:%=$(OUT)/tokens/%.mpk)
EXAM_FILES := $(sort $(wildcard $(DATA)/exam/*/*))
# OUT/exam/BENCH/FILE-STEM.exam for DATA/exam/BENCH/FILE
EXAMS := $(foreach f,$(EXAM_FILES),$(OUT)/exam/$(notdir $(patsubst %/,%,$(dir $(f))))/$(basename $(notdir $(f))).exam)
PREDS := $(EXAMS:$(OUT)/exam/%.exam=$(OUT)/pred/%.pred)
BASE_PREDS := $(EXAMS:$(OUT)/exam/%.exam=$(OUT)/pred-base/%.pred)

ifeq ($(TASK_FILES),)
$(error no task files in $(DATA)/train/)
endif

.PHONY: all report clean-run
.DELETE_ON_ERROR:
all: report
report: $(OUT)/report.md

# A file that changes only when its content does: make sees a new value of FLAGS as a changed input.
define keep_if_same
	@mkdir -p $(dir $@)
	@printf '%s\n' $(1) > $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi
endef

$(OUT)/train.flags: FORCE
	$(call keep_if_same,"$(METHOD) $(METHOD_FLAGS) $(TRAIN_FLAGS) --seed $(SEED)")
$(OUT)/tokenize.flags: FORCE
	$(call keep_if_same,"$(TEMPLATE)")
FORCE:

# tokenize each task with the base model's tokenizer
$(OUT)/tokens/%.mpk: $(OUT)/tokenize.flags $(BASE)/tokenizer.json
	@mkdir -p $(dir $@)
	$(P)tokenize -q --tokenizer $(BASE) --template $(TEMPLATE) --task $* -o $@ $(filter $(DATA)/train/$*.%,$(TASK_FILES))

# mix the tasks (temperature sampling), pack into shards
$(OUT)/mixed.mpk: $(TOKENS)
	$(P)mix-tasks -q --temperature $(TEMPERATURE) --seed $(SEED) --stats $(OUT)/mix-stats.json -o $@ $(TOKENS)
$(OUT)/shards/manifest.json: $(OUT)/mixed.mpk
	$(P)shard -q --force --seq-len $(SEQ_LEN) --valid $(VALID) -o $(OUT)/shards $<

# train the experts (a new run directory each time its inputs change)
$(OUT)/run/adapter.safetensors: $(OUT)/shards/manifest.json $(OUT)/train.flags $(BASE)/config.json
	$(P)train-experts -q --force --base $(BASE) --method $(METHOD) $(METHOD_FLAGS) $(TRAIN_FLAGS) \
		--seed $(SEED) -o $(OUT)/run $(OUT)/shards

# exam prompts, one stream per exam file
define exam_rule
$(OUT)/exam/$(1)/$(basename $(notdir $(2))).exam: $(2) $(BASE)/tokenizer.json $(OUT)/tokenize.flags
	@mkdir -p $$(dir $$@)
	$(P)tokenize -q --exam $(1) --tokenizer $(BASE) $(EXAM_FLAGS) -o $$@ $(2)
endef
$(foreach f,$(EXAM_FILES),$(eval $(call exam_rule,$(notdir $(patsubst %/,%,$(dir $(f)))),$(f))))

# predictions of the trained adapter and of the untrained base
$(OUT)/pred/%.pred: $(OUT)/exam/%.exam $(OUT)/run/adapter.safetensors
	@mkdir -p $(dir $@)
	$(P)eval-exam -q --base $(BASE) --adapter $(OUT)/run --mode $(EVAL_MODE) -o $@ $<
$(OUT)/pred-base/%.pred: $(OUT)/exam/%.exam
	@mkdir -p $(dir $@)
	$(P)eval-exam -q --base $(BASE) --mode $(EVAL_MODE) -o $@ $<

# the report: scores with intervals, paired against the base model
$(OUT)/report.md: $(PREDS) $(BASE_PREDS)
	@rm -f $@.tmp
	@echo "# $(METHOD) on $(notdir $(BASE))" > $@.tmp
	@echo >> $@.tmp
	@for p in $(PREDS); do \
		b=$(OUT)/pred-base/$${p#$(OUT)/pred/}; \
		echo "## $${p#$(OUT)/pred/}" >> $@.tmp; echo >> $@.tmp; \
		$(P)score --markdown --seed $(SEED) --baseline $$b $$p >> $@.tmp || exit 1; echo >> $@.tmp; \
	done
	@for p in $(PREDS); do \
		$(P)score --json --seed $(SEED) $$p > $(OUT)/report-$$(echo $${p#$(OUT)/pred/} | tr / -).json || exit 1; \
	done
	$(P)score --seed $(SEED) --svg $(OUT)/scores.svg $(PREDS) > /dev/null
	@mv $@.tmp $@
	@echo "$(METHOD): report in $@"

clean-run:
	rm -rf $(OUT)/run $(OUT)/pred $(OUT)/report.md
