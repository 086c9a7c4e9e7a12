# medmoe — build, test, install.
#   make            every program into bin/
#   make test       unit tests (cmocka) and program tests (TAP), one summary line
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-faults the long fault-injection tests (kill -9 at many points, failing renames/fsyncs, full disks)
#   make fuzz FUZZ_SECONDS=N   every libFuzzer target in tests/fuzz for N seconds (clang, ASan + UBSan)
#   make bench      benchmark tables (installs the Python peers it compares against)
#   make install PREFIX=/usr/local DESTDIR=
#   make check-gpu  the CUDA backend against the CPU backend, one table (SKIPs without a GPU)
#   make bench-gpu  GPU training throughput, MFU and memory against transformers + PEFT
#   make gpu-bundle gpu-bundle/: everything check-gpu and bench-gpu need on a machine without our Debian libraries
# Every tools/NAME.c becomes bin/NAME; every lib/*.c goes into one static library;
# every tests/unit/test_NAME.c becomes a cmocka test binary.  New files need no Makefile edit.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
NVCC    ?= nvcc
PKG_CONFIG ?= pkg-config

PKGS := msgpack libutf8proc libpcre2-8 jansson libarchive libmd openblas
# libcsv ships no pkg-config file, so it is named directly.
EXTRA_LIBS := -lcsv

ifeq ($(SAN),1)
BUILD   := build-san
BINDIR  := build-san/bin
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD   := build
BINDIR  := bin
OPT     := -O2 -g
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) -Wall -Wextra -Werror -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -fopenmp -Ilib $(PKG_CFLAGS) \
           -DMEDMOE_VERSION='"$(VERSION)"' -DMEDMOE_SOURCE_DIR='"$(CURDIR)"' \
           -DMEDMOE_PLUGIN_DIR='"$(CURDIR)/$(BUILD)"'
LDFLAGS ?=
LDFLAGS += $(filter -fsanitize%,$(OPT)) -fopenmp
LDLIBS  += $(PKG_LIBS) $(EXTRA_LIBS) -lpthread -lm

VERSION := 0.1.0

LIB_SRC  := $(sort $(wildcard lib/*.c))
LIB_OBJ  := $(LIB_SRC:lib/%.c=$(BUILD)/lib/%.o)
LIB_A    := $(BUILD)/libmedmoe.a
TOOLS    := $(sort $(patsubst tools/%.c,%,$(wildcard tools/*.c)))
BINS     := $(TOOLS:%=$(BINDIR)/%)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
MANS     := $(sort $(wildcard man/*.1))

# The distributed layer (lib/dist*.c, DESIGN §5): MPI when pkg-config knows Open MPI or MPICH, and NCCL on top
# when CUDA_HOME holds nccl.h, cuda_runtime.h and libnccl as well.  Without MPI (or with MPI=0) both are left
# out and the programs run as one process.
# the CUDA toolkit: where nvcc is, else the usual place
CUDA_HOME ?= $(or $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC) 2>/dev/null))),/usr/local/cuda)
ifneq ($(MPI),0)
MPI_PKG := $(shell $(PKG_CONFIG) --exists ompi-c 2>/dev/null && echo ompi-c || \
	     ($(PKG_CONFIG) --exists mpich 2>/dev/null && echo mpich))
endif
ifneq ($(MPI_PKG),)
DIST_CFLAGS := -DMEDMOE_MPI $(shell $(PKG_CONFIG) --cflags $(MPI_PKG))
DIST_LIBS   := $(shell $(PKG_CONFIG) --libs $(MPI_PKG))
HAVE_NCCL   := $(shell test -f $(CUDA_HOME)/include/nccl.h && test -f $(CUDA_HOME)/include/cuda_runtime.h && \
		 ls $(CUDA_HOME)/lib64/libnccl.so* >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_NCCL),yes)
DIST_CFLAGS += -DMEDMOE_NCCL -I$(CUDA_HOME)/include
DIST_LIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lnccl -lcudart
endif
endif
# only the programs that call the layer (train-experts, eval-exam) depend on these libraries
LDLIBS  += -Wl,--as-needed $(DIST_LIBS) -Wl,--no-as-needed
DIST_OBJ   := $(BUILD)/lib/dist.o $(BUILD)/lib/dist_mpi.o $(BUILD)/lib/dist_nccl.o
DIST_STAMP := $(BUILD)/dist.flags

# The fuzz targets (tests/fuzz/fuzz_NAME.c): built with clang and libFuzzer by `make fuzz`, and with $(CC) into
# replay programs that `make test` runs on the committed seeds and regression inputs.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES   := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# clang 14 has no OpenMP runtime of its own in the Debian packages we use: libgomp, as gcc builds use.
FUZZ_CFLAGS  := -std=c11 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
                -fopenmp=libgomp -Ilib -Itests/fuzz $(PKG_CFLAGS) -DMEDMOE_VERSION='"$(VERSION)"' \
                -DMEDMOE_SOURCE_DIR='"$(CURDIR)"' -DSTREAM_READ_CHUNK=4096
FUZZ_LIB_OBJ := $(LIB_SRC:lib/%.c=$(FUZZ_BUILD)/lib/%.o)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
REPLAY_BINS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)
FAULT_SHIM   := $(BUILD)/tests/faultshim.so

# The CUDA backend is optional: built when nvcc is on PATH and cuda/ has sources.  Then every cuda/*.cu is
# compiled (C++17, the project's warnings as errors, nvcc's too) for sm_80 (A100) and sm_90a (H100/H200, with
# wgmma) plus compute_90 PTX for newer GPUs, into the plugin libmedmoe_cuda.so
# (lib/ops_cuda_plugin.h), which lib/ops.c opens on the first use of a CUDA device.
CU_SRC   := $(sort $(wildcard cuda/*.cu))
HAVE_NVCC := $(shell command -v $(NVCC) >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_NVCC),yes)
ifneq ($(CU_SRC),)
CUDA_ON   := yes
CU_OBJ    := $(CU_SRC:cuda/%.cu=$(BUILD)/cuda/%.o)
CUDA_PLUGIN := $(BUILD)/libmedmoe_cuda.so
NVCC_ARCH := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
             -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?=
NVCCFLAGS += -std=c++17 -O3 $(NVCC_ARCH) -Xcompiler -fPIC,-Wall,-Wextra,-Werror -Werror all-warnings -Ilib
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart
endif
endif
# Programs export their symbols: the CUDA plugin calls die() and friends in the program that loaded it.
LDFLAGS += -rdynamic
LDLIBS  += -ldl

# make check-gpu / bench-gpu / gpu-bundle (issue 12): the model-level GPU checks in tests/gpu/*.c, the GPU
# benchmark's driver bench/train.c, and the inputs tests/gpu/mkdata.sh makes here (token ids only).
GPU_SRC  := $(sort $(wildcard tests/gpu/*.c))
GPU_BIN  := $(GPU_SRC:tests/gpu/%.c=$(BUILD)/tests/gpu/%)
GPU_DATA := $(BUILD)/gpu-data
BENCH_TRAIN := $(BUILD)/bench/train

.PHONY: all deps test check test-faults fuzz bench install uninstall clean demo check-gpu bench-gpu gpu-bundle cuda-note dist-note FORCE
all: cuda-note dist-note $(BINS) $(CUDA_PLUGIN)

dist-note:
ifeq ($(MPI_PKG),)
	@echo "medmoe: distributed layer: left out (no MPI found: install libopenmpi-dev for mpirun/srun ranks)"
else ifeq ($(HAVE_NCCL),yes)
	@echo "medmoe: distributed layer: MPI ($(MPI_PKG)) for CPU ranks, NCCL ($(CUDA_HOME)) for GPU ranks"
else
	@echo "medmoe: distributed layer: MPI ($(MPI_PKG)) for CPU ranks; NCCL left out (not under $(CUDA_HOME))"
endif

cuda-note:
ifeq ($(CUDA_ON),yes)
	@echo "medmoe: CUDA backend: $(CUDA_PLUGIN), built with $(NVCC) (sm_80, sm_90a, compute_90 PTX)"
else ifeq ($(HAVE_NVCC),yes)
	@echo "medmoe: CUDA backend: nvcc found, no cuda/*.cu sources yet; CPU backend only"
else
	@echo "medmoe: CUDA backend: left out (nvcc not found); CPU backend only"
endif

deps:
	@scripts/deps.sh

$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h) | $(BUILD)/lib
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/cuda/%.o: cuda/%.cu $(wildcard cuda/*.cuh) lib/ops.h lib/ops_backend.h lib/die.h | $(BUILD)/cuda
	@echo "  NVCC    $<"
	@$(NVCC) $(NVCCFLAGS) -c -o $@ $<

# The layer's objects follow its flags: finding MPI or NCCL (or MPI=0) rebuilds them.
$(DIST_OBJ): CFLAGS += $(DIST_CFLAGS)
$(DIST_OBJ): $(DIST_STAMP)
$(DIST_STAMP): FORCE | $(BUILD)/lib
	@echo '$(DIST_CFLAGS) $(DIST_LIBS)' | cmp -s - $@ || echo '$(DIST_CFLAGS) $(DIST_LIBS)' > $@

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

# The CUDA backend is a plugin (lib/ops_cuda_plugin.h says why): a CPU run never loads cuBLAS.
$(CUDA_PLUGIN): $(CU_OBJ)
	@echo "  LINK    $@"
	@$(CXX) -shared -o $@ $^ $(CUDA_LIBS)

$(BINDIR)/%: tools/%.c $(LIB_A) $(wildcard lib/*.h) | $(BINDIR)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_A) $(wildcard lib/*.h) tests/unit/unit.h | $(BUILD)/tests
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS) -lcmocka

# The cross-backend op test compares every backend with the CPU backend's own sources built in fp64: those are
# compiled with -DMEDMOE_DOUBLE into one object whose symbols are renamed cpu_* -> ref64_*, so both precisions
# live in one binary.
REF64_SRC := lib/ops_cpu.c lib/ops_cpu_layers.c lib/ops_cpu_adapter.c
$(BUILD)/tests/ops_ref64.o: $(REF64_SRC) $(wildcard lib/*.h) | $(BUILD)/tests
	@echo "  REF64   $@"
	@for f in $(REF64_SRC); do $(CC) $(CFLAGS) -DMEDMOE_DOUBLE -c -o $(BUILD)/tests/ref64_$$(basename $$f .c).o $$f || exit 1; done
	@ld -r -o $@.tmp $(REF64_SRC:lib/%.c=$(BUILD)/tests/ref64_%.o)
	@nm -g --defined-only $@.tmp | awk '$$3 ~ /^(cpu_|ops_cpu_)/ { n = $$3; sub(/^(ops_)?cpu_/, "ref64_", n); print $$3, n }' > $@.syms
	@objcopy --redefine-syms=$@.syms $@.tmp $@
	@rm -f $@.tmp $@.syms $(REF64_SRC:lib/%.c=$(BUILD)/tests/ref64_%.o)

$(BUILD)/tests/test_backend_ops: tests/unit/test_backend_ops.c $(BUILD)/tests/ops_ref64.o $(LIB_A) $(wildcard lib/*.h) \
		tests/unit/unit.h | $(BUILD)/tests
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/tests/ops_ref64.o $(LIB_A) $(LDLIBS) -lcmocka

$(BUILD)/tests/gpu/%: tests/gpu/%.c $(LIB_A) $(wildcard lib/*.h) | $(BUILD)/tests/gpu
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

# bench/NAME.c drivers (bench/train.sh, bench/model_forward.sh, bench/gpu.sh build theirs here: with the CUDA
# backend in the library they need its link flags)
$(BUILD)/bench/%: bench/%.c $(LIB_A) $(wildcard lib/*.h) | $(BUILD)/bench
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(GPU_DATA): tests/gpu/mkdata.sh tests/helpers/mklearn.c | $(BINS)
	@echo "  DATA    $@"
	@MEDMOE_BIN=$(CURDIR)/$(BINDIR) MEDMOE_TOP=$(CURDIR) tests/gpu/mkdata.sh $@

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/common.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(LIB_A) \
		$(wildcard lib/*.h) | $(BUILD)/fuzz
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/common.c tests/fuzz/replay.c \
		$(LIB_A) $(LDLIBS)

# LD_PRELOAD shim that makes chosen renames, fsyncs and writes fail (tests/helpers/faultshim.c).
$(FAULT_SHIM): tests/helpers/faultshim.c | $(BUILD)/tests
	@echo "  CC      $@"
	@$(CC) -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl

$(BUILD)/lib $(BUILD)/cuda $(BUILD)/tests $(BUILD)/tests/gpu $(BUILD)/bench $(BUILD)/fuzz $(BINDIR) $(FUZZ_BUILD)/lib:
	@mkdir -p $@

$(FUZZ_BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h) | $(FUZZ_BUILD)/lib
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libmedmoe.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/common.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/libmedmoe.a
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/common.c \
		$(FUZZ_BUILD)/libmedmoe.a $(PKG_LIBS) $(EXTRA_LIBS) -lpthread -lm -ldl

# Not part of `make test`: FUZZ_SECONDS per target (FUZZ_TARGETS picks some), one at a time, niced.
fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# `make test` first makes sure the Debian packages are there, so a fresh machine needs nothing else.
test check: deps
	@$(MAKE) --no-print-directory $(BINS) $(UNIT_BIN) $(GPU_BIN) $(REPLAY_BINS) $(FAULT_SHIM)
	@MEDMOE_BIN=$(CURDIR)/$(BINDIR) MEDMOE_UNIT=$(CURDIR)/$(BUILD)/tests MEDMOE_BUILD=$(CURDIR)/$(BUILD) \
		tests/run.sh

# The long fault-injection run: more kill points and seeds than the quick one inside `make test`.
test-faults: deps
	@$(MAKE) --no-print-directory $(BINS) $(FAULT_SHIM)
	@for t in faults hostile; do \
		MEDMOE_BIN=$(CURDIR)/$(BINDIR) MEDMOE_BUILD=$(CURDIR)/$(BUILD) MEDMOE_FAULTS=long MEDMOE_TOP=$(CURDIR) \
			OMP_WAIT_POLICY=passive sh tests/t/$$t.sh > $(BUILD)/test-faults-$$t.log 2>&1; \
		echo "$$t: $$(grep -c '^ok' $(BUILD)/test-faults-$$t.log) ok, $$(grep -c '^not ok' $(BUILD)/test-faults-$$t.log) not ok" \
			"(log: $(BUILD)/test-faults-$$t.log)"; \
	done; ! grep -q '^not ok' $(BUILD)/test-faults-faults.log $(BUILD)/test-faults-hostile.log

bench: deps
	@$(MAKE) --no-print-directory $(BINS)
	@MEDMOE_BIN=$(CURDIR)/$(BINDIR) bench/run.sh

demo: deps
	@$(MAKE) --no-print-directory $(BINS)
	@MEDMOE_BIN=$(CURDIR)/$(BINDIR) scripts/demo.sh

# The CUDA backend against the CPU backend, one table at the end (tests/gpu/check-gpu.sh says what it checks);
# on a machine without a GPU every GPU comparison says SKIP.  make check-gpu QUICK=1 for the short sanitizer runs.
check-gpu: deps
	@$(MAKE) --no-print-directory $(BINS) $(CUDA_PLUGIN) $(BUILD)/tests/test_backend_ops \
		$(GPU_BIN) $(GPU_DATA)
	@MEDMOE_BIN=$(CURDIR)/$(BINDIR) MEDMOE_TESTS=$(CURDIR)/$(BUILD)/tests MEDMOE_GPU_TESTS=$(CURDIR)/$(BUILD)/tests/gpu \
		MEDMOE_GPU_DATA=$(CURDIR)/$(GPU_DATA) tests/gpu/check-gpu.sh $(if $(QUICK),--quick)

# Training throughput, MFU and peak memory on the GPU against transformers + PEFT (bench/gpu.sh); QUICK=1 for
# the short version.
bench-gpu: deps
	@$(MAKE) --no-print-directory $(BINS) $(CUDA_PLUGIN) $(BENCH_TRAIN)
	@MEDMOE_BIN=$(CURDIR)/$(BINDIR) MEDMOE_BENCH_TRAIN=$(CURDIR)/$(BENCH_TRAIN) bench/gpu.sh $(if $(QUICK),--quick)

# gpu-bundle/: the programs, checks, benchmark and their inputs with every non-system library they need, for a
# GPU machine without this project's Debian libraries (scripts/gpu-bundle.sh; gpu-bundle/run.sh runs it all).
# (gpu-bundle.sh links its programs itself, from the library's objects, the plugin's and ops_ref64.o)
gpu-bundle: deps
	@$(MAKE) --no-print-directory $(BINS) $(CUDA_PLUGIN) $(BUILD)/tests/ops_ref64.o $(GPU_DATA)
	@MEDMOE_BIN=$(CURDIR)/$(BINDIR) MEDMOE_BUILD=$(CURDIR)/$(BUILD) scripts/gpu-bundle.sh gpu-bundle

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/medmoe/schemas
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(MANS) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 schemas/* $(DESTDIR)$(PREFIX)/share/medmoe/schemas/
ifeq ($(CUDA_ON),yes)
	install -d $(DESTDIR)$(PREFIX)/lib/medmoe
	install -m 755 $(CUDA_PLUGIN) $(DESTDIR)$(PREFIX)/lib/medmoe/
endif

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(PREFIX)/bin/%) $(MANS:man/%=$(DESTDIR)$(PREFIX)/share/man/man1/%)
	rm -rf $(DESTDIR)$(PREFIX)/share/medmoe $(DESTDIR)$(PREFIX)/lib/medmoe

clean:
	rm -rf build build-san bin gpu-bundle $(FUZZ_BUILD)

.SECONDARY: $(LIB_OBJ) $(CU_OBJ) $(FUZZ_LIB_OBJ)
