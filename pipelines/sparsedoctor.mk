# sparsedoctor.mk — SparseDoctor (Zhang et al., 2025): MING-MOE-style token routing whose router is supervised
# by a contrastive loss over an expert memory queue.  The paper's body is not public; DESIGN §4 gives our
# reading: InfoNCE with temperature 0.07 weighted 0.1, a 4096-entry queue per expert.  Training settings
# follow MING-MOE's (research §A3 lists none of the paper's own).
METHOD := sparsedoctor
METHOD_FLAGS ?= --experts 8 --rank 16 --alpha 32 --top-k 2 --lb-coef 0.01 --con-tau 0.07 --con-lambda 0.1 \
	--con-queue 4096 --lr 2e-4 --schedule cosine --warmup-ratio 0.03 --weight-decay 0
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
