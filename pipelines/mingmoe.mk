# mingmoe.mk — MING-MOE (Liao et al., 2024): plain LoRA on attention, sparse MoLoRA on the MLP with a router
# per adapted linear, top-2 of 8 experts of rank 16 each, alpha 32, the Switch load-balancing loss.  Reference
# training settings (research §A2, the authors' scripts): lr 2e-4, cosine, warmup ratio 0.03, no weight decay,
# one epoch, 128 sequences per step.
METHOD := mingmoe
METHOD_FLAGS ?= --experts 8 --rank 16 --alpha 32 --top-k 2 --lb-coef 0.01 --lr 2e-4 --schedule cosine \
	--warmup-ratio 0.03 --weight-decay 0
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
