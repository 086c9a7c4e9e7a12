# moelora.mk — MOELoRA (Liu et al., "When MOE Meets LLMs", SIGIR 2024): a task-motivated gate over dense LoRA
# experts on every linear.  Reference settings (../shared/research/methods-and-benchmarks.md §A1, from the
# authors' code): 8 experts sharing a total rank of 16, alpha 32, dropout 0.1, a 64-d task embedding, lr 2e-4
# with linear decay and no warmup, 64 sequences per step.  Each task's adapter merges exactly
# (merge-adapters --task).
METHOD := moelora
METHOD_FLAGS ?= --experts 8 --rank 16 --alpha 32 --dropout 0.1 --task-emb 64 --targets q,k,v,o,gate,up,down \
	--lr 2e-4 --schedule linear --warmup 0
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
