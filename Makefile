# medmoe — build, test, install.
#   make            every program into bin/
#   make test       unit tests (cmocka) and program tests (TAP), one summary line
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-faults the long fault-injection tests (kill -9 at many points, failing renames/fsyncs, full disks)
#   make fuzz FUZZ_SECONDS=N   every libFuzzer target in tests/fuzz for N seconds (clang, ASan + UBSan)
#   make bench      benchmark tables (installs the Python peers it compares against)
#   make install PREFIX=/usr/local DESTDIR=
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
           -DMEDMOE_VERSION='"$(VERSION)"' -DMEDMOE_SOURCE_DIR='"$(CURDIR)"'
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

# The CUDA backend is optional: built when nvcc is on PATH and cuda/ has sources.
CU_SRC   := $(sort $(wildcard cuda/*.cu))
HAVE_NVCC := $(shell command -v $(NVCC) >/dev/null 2>&1 && echo yes)

.PHONY: all deps test check test-faults fuzz bench install uninstall clean demo check-gpu cuda-note
all: cuda-note $(BINS)

cuda-note:
ifeq ($(HAVE_NVCC),yes)
	@test -z "$(CU_SRC)" && echo "medmoe: CUDA backend: nvcc found, no cuda/*.cu sources yet; CPU backend only" || true
else
	@echo "medmoe: CUDA backend: left out (nvcc not found); CPU backend only"
endif

deps:
	@scripts/deps.sh

$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h) | $(BUILD)/lib
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BINDIR)/%: tools/%.c $(LIB_A) $(wildcard lib/*.h) | $(BINDIR)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_A) $(wildcard lib/*.h) tests/unit/unit.h | $(BUILD)/tests
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS) -lcmocka

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/common.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(LIB_A) \
		$(wildcard lib/*.h) | $(BUILD)/fuzz
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/common.c tests/fuzz/replay.c \
		$(LIB_A) $(LDLIBS)

# LD_PRELOAD shim that makes chosen renames, fsyncs and writes fail (tests/helpers/faultshim.c).
$(FAULT_SHIM): tests/helpers/faultshim.c | $(BUILD)/tests
	@echo "  CC      $@"
	@$(CC) -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl

$(BUILD)/lib $(BUILD)/tests $(BUILD)/fuzz $(BINDIR) $(FUZZ_BUILD)/lib:
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
		$(FUZZ_BUILD)/libmedmoe.a $(PKG_LIBS) $(EXTRA_LIBS) -lpthread -lm

# Not part of `make test`: FUZZ_SECONDS per target (FUZZ_TARGETS picks some), one at a time, niced.
fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# `make test` first makes sure the Debian packages are there, so a fresh machine needs nothing else.
test check: deps
	@$(MAKE) --no-print-directory $(BINS) $(UNIT_BIN) $(REPLAY_BINS) $(FAULT_SHIM)
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

check-gpu:
	@echo "medmoe: check-gpu: the CUDA backend has not been written yet (see the model-engine and training issues)"; exit 1

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/medmoe/schemas
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(MANS) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 schemas/* $(DESTDIR)$(PREFIX)/share/medmoe/schemas/

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(PREFIX)/bin/%) $(MANS:man/%=$(DESTDIR)$(PREFIX)/share/man/man1/%)
	rm -rf $(DESTDIR)$(PREFIX)/share/medmoe

clean:
	rm -rf build build-san bin $(FUZZ_BUILD)

.SECONDARY: $(LIB_OBJ) $(FUZZ_LIB_OBJ)
