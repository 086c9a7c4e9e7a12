#!/bin/sh
# gpu-bundle.sh DIR — make DIR (make gpu-bundle: gpu-bundle/), a self-contained, relocatable folder that runs
# make check-gpu and make bench-gpu on a Linux GPU machine that has the NVIDIA driver, the CUDA 13 runtime and
# cuBLAS (a toolkit, or PyTorch's nvidia-* wheels), and for the benchmark's peer PyTorch, transformers and PEFT —
# but none of this project's Debian libraries, no compiler and no network (an HPC cluster where users cannot
# install packages is the same situation).  DIR/README says how to use it.
#
# What goes in:
#   bin/      init-base, train-experts, eval-exam, stream2json, and the check and bench drivers (check_model,
#             test_backend_ops, bench-train), linked here with a run path of $ORIGIN/../lib and --as-needed (so no
#             program carries a library it does not call: libarchive and its tree, which only tokenize needs,
#             stay out), and with the distributed layer left out (a single process: the GPU machine has no
#             mpirun, and NCCL alone is ~250 MB);
#   lib/      medmoe/libmedmoe_cuda.so: the CUDA backend plugin (lib/ops_cuda_plugin.h), which the programs open
#             from ../lib/medmoe/ beside them; the other non-system libraries the programs load, copied from
#             this machine (msgpack-c, jansson, libmd, PCRE2, utf8proc, cmocka, libgomp, ...), except OpenBLAS:
#             its Debian build is 36 MB (all of LAPACK inside), so lib/libopenblas.so.0 is made here from
#             Debian's libopenblas.a with only the symbols medmoe calls exported (every CPU kernel stays: ~25 MB);
#   check/, bench/, data/, schemas/   tests/gpu/check-gpu.sh and cmp_pred.awk, bench/gpu.sh and gpu_peer.py,
#             tests/gpu/mkdata.sh's inputs (token ids only), the stream specs eval-exam and stream2json read;
#   run.sh, env.sh, README, VERSION.
# Not bundled: the CUDA runtime, cuBLAS and cuBLASLt (~600 MB; env.sh finds them on the target), glibc ≥ the
# version printed below, libstdc++ and libgcc_s (present wherever PyTorch runs).
# Checks before it ends: ldd of every program and library with only the bundle and the CUDA libraries on
# LD_LIBRARY_PATH (env -i): each must resolve into lib/, the CUDA directory or the system list above, and ldd -r
# must find every symbol; then, when run as root where unshare(1) and mounts work, every program runs inside a
# chroot holding only glibc, libstdc++, libgcc_s, the CUDA libraries and the bundle (no /usr/lib extras at all).
# Environment (from the Makefile): MEDMOE_BIN, MEDMOE_BUILD; CC, NVCC, CUDA_HOME as there.
set -eu
[ $# -eq 1 ] || { echo "usage: gpu-bundle.sh DIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
B=$1
: "${MEDMOE_BUILD:=$top/build}" "${MEDMOE_BIN:=$top/bin}" "${CC:=cc}" "${NVCC:=nvcc}"
nvcc_path=$(command -v "$NVCC" || true)
[ -n "$nvcc_path" ] || { echo "gpu-bundle: nvcc not found: the bundle needs the CUDA backend" >&2; exit 1; }
: "${CUDA_HOME:=$(dirname "$(dirname "$nvcc_path")")}"
cudalib=$CUDA_HOME/lib64
ls "$MEDMOE_BUILD"/cuda/*.o > /dev/null 2>&1 || { echo "gpu-bundle: no $MEDMOE_BUILD/cuda/*.o: run make first" >&2; exit 1; }
PKGS="msgpack libutf8proc libpcre2-8 jansson libarchive libmd openblas"
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$B.tmp"
mkdir -p "$B.tmp/bin" "$B.tmp/lib" "$B.tmp/check" "$B.tmp/bench" "$B.tmp/schemas"
S=$B.tmp

# ---------------------------------------------------------------------------------------------------------
# the CUDA backend plugin, as the build made it
echo "gpu-bundle: lib/medmoe/libmedmoe_cuda.so"
[ -f "$MEDMOE_BUILD/libmedmoe_cuda.so" ] || { echo "gpu-bundle: no $MEDMOE_BUILD/libmedmoe_cuda.so: run make first" >&2; exit 1; }
mkdir -p "$S/lib/medmoe"
cp "$MEDMOE_BUILD/libmedmoe_cuda.so" "$S/lib/medmoe/"
strip --strip-unneeded "$S/lib/medmoe/libmedmoe_cuda.so"
cuda_sonames=$(readelf -d "$S/lib/medmoe/libmedmoe_cuda.so" | sed -n 's/.*NEEDED.*\[\(lib\(cudart\|cublas\|cublasLt\)\.so[.0-9]*\)\]/\1/p' | tr '\n' ' ')

# the C library with the distributed layer built single-process (no MPI, no NCCL: see above)
for f in dist dist_mpi dist_nccl; do
	"$CC" -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -fopenmp -Ilib \
		-c -o "$tmp/$f.o" "lib/$f.c"
done
ar rcs "$tmp/libmedmoe-c.a" $(ls "$MEDMOE_BUILD"/lib/*.o | grep -v '/dist\(_mpi\|_nccl\)\?\.o$') "$tmp"/dist*.o

# ---------------------------------------------------------------------------------------------------------
# OpenBLAS with the symbols medmoe calls (lib/ops_cpu*.c, lib/blas_select.c) and nothing of LAPACK
echo "gpu-bundle: lib/libopenblas.so.0 (trimmed)"
blas_a=$(pkg-config --variable=libdir openblas)/libopenblas.a
[ -f "$blas_a" ] || blas_a=$(find /usr/lib -name 'libopenblas*.a' | head -1)
syms="cblas_sgemm cblas_dgemm openblas_get_corename openblas_set_num_threads openblas_get_num_threads gotoblas_HASWELL gotoblas_SKYLAKEX"
{
	printf 'OPENBLAS_MEDMOE {\n  global:\n'
	for s in $syms; do printf '    %s;\n' "$s"; done
	printf '  local: *;\n};\n'
} > "$tmp/blas.map"
undef=""
for s in $syms; do undef="$undef -Wl,-u,$s"; done
# shellcheck disable=SC2086
"$CC" -shared -o "$S/lib/libopenblas.so.0" -Wl,-soname,libopenblas.so.0 -Wl,--version-script="$tmp/blas.map" $undef \
	"$blas_a" -lpthread -lm -Wl,--gc-sections
strip --strip-unneeded "$S/lib/libopenblas.so.0"

# ---------------------------------------------------------------------------------------------------------
# the programs
cflags="-std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -fopenmp -Ilib"
cflags="$cflags $(pkg-config --cflags $PKGS)"
libs="$(pkg-config --libs $PKGS) -lcsv -lpthread -lm"
link() {   # NAME SOURCE [more cc arguments: objects, -I, -lcmocka]
	name=$1 src=$2
	shift 2
	echo "gpu-bundle: bin/$name"
	# shellcheck disable=SC2086
	# -rdynamic: the CUDA plugin calls back into the program (die, dtype_size, ...)
	"$CC" $cflags "-DMEDMOE_VERSION=\"$version\"" -rdynamic -o "$S/bin/$name" "$src" "$@" "$tmp/libmedmoe-c.a" \
		-Wl,--as-needed $libs -ldl -Wl,-rpath,'$ORIGIN/../lib' -Wl,--enable-new-dtags
	strip --strip-unneeded "$S/bin/$name"
}
for t in init-base train-experts eval-exam stream2json; do link "$t" "tools/$t.c"; done
link check_model tests/gpu/check_model.c
link bench-train bench/train.c
link test_backend_ops tests/unit/test_backend_ops.c -Itests/unit "$MEDMOE_BUILD/tests/ops_ref64.o" -lcmocka

# ---------------------------------------------------------------------------------------------------------
# every other non-system library the programs load, copied from this machine
system_re='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libcudart|libcublas|libcublasLt|libcuda)\.so'
for i in 1 2 3; do   # the copied libraries' own needs too
	for f in "$S"/bin/* "$S"/lib/*.so* "$S"/lib/medmoe/*.so; do
		LD_LIBRARY_PATH="$S/lib:$cudalib" ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
	done | sort -u | while read -r so path; do
		echo "$so" | grep -qE "$system_re" && continue
		[ -e "$S/lib/$so" ] && continue
		echo "gpu-bundle: lib/$so (from $path)"
		cp -L "$path" "$S/lib/$so"
		chmod 644 "$S/lib/$so"
	done
	: "$i"
done

# ---------------------------------------------------------------------------------------------------------
# scripts, data, specs
cp tests/gpu/check-gpu.sh tests/gpu/cmp_pred.awk "$S/check/"
cp bench/gpu.sh bench/gpu_peer.py "$S/bench/"
cp schemas/*.json "$S/schemas/"
cp -R "$MEDMOE_BUILD/gpu-data" "$S/data"
sed "s|@CUDA_SONAMES@|$cuda_sonames|" scripts/gpu-bundle/env.sh > "$S/env.sh"
cp scripts/gpu-bundle/run.sh scripts/gpu-bundle/README "$S/"
chmod 755 "$S/run.sh" "$S/check/check-gpu.sh" "$S/bench/gpu.sh"
glibc=$(objdump -T "$S"/bin/* "$S"/lib/*.so* "$S"/lib/medmoe/*.so 2> /dev/null | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -1)
glibcxx=$(objdump -T "$S"/bin/* "$S"/lib/*.so* "$S"/lib/medmoe/*.so 2> /dev/null | grep -o 'GLIBCXX_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -1)
commit=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
dirty=$(git status --porcelain 2> /dev/null | grep -qv '^??' && echo "+changes" || true)
{
	echo "medmoe $version, commit $commit$dirty"
	echo "built with $("$nvcc_path" --version | grep -o "release [0-9.]*, V[0-9.]*") for sm_80, sm_90a, compute_90 PTX"
	echo "needs: glibc >= ${glibc#GLIBC_}, libstdc++ with $glibcxx, CUDA runtime and cuBLAS: $cuda_sonames"
} > "$S/VERSION"
# the same bytes from the same tree: no timestamps inside, files in a fixed order
find "$S" -exec touch -h -d @0 {} +

# ---------------------------------------------------------------------------------------------------------
# checks
echo "gpu-bundle: checking every program's libraries with only the bundle and $cudalib (env -i)"
bad=0
for f in "$S"/bin/* "$S"/lib/*.so* "$S"/lib/medmoe/*.so; do
	res=$(env -i LD_LIBRARY_PATH="$cudalib" /usr/bin/ldd "$f" 2>&1)
	if echo "$res" | grep -q "not found"; then
		echo "gpu-bundle: $f: $(echo "$res" | grep "not found" | tr '\n' ' ')" >&2
		bad=1
	fi
	echo "$res" | awk '$2 == "=>" { print $1, $3 }' | while read -r so path; do
		path=$(readlink -f "$path" 2> /dev/null || echo "$path")
		case $path in
		"$(cd "$S/lib" && pwd)"/*) ;;
		"$cudalib"/*) ;;
		*) echo "$so" | grep -qE "$system_re" || { echo "gpu-bundle: $f needs $so from $path, outside the bundle" >&2; echo x; } ;;
		esac
	done > "$tmp/outside"
	[ -s "$tmp/outside" ] && bad=1
	# a program must find every symbol (the plugin alone calls back into the programs: die, dtype_size)
	case $f in */lib/*) continue ;; esac
	if env -i LD_LIBRARY_PATH="$cudalib" /usr/bin/ldd -r "$f" 2>&1 | grep -q "undefined symbol"; then
		echo "gpu-bundle: $f: undefined symbols: $(env -i LD_LIBRARY_PATH="$cudalib" /usr/bin/ldd -r "$f" 2>&1 | grep -m3 'undefined symbol')" >&2
		bad=1
	fi
done
# the plugin must open from the bundle (here without a GPU the backend then says there is no device, not that
# it cannot be loaded)
plugin_msg=$(env -i LD_LIBRARY_PATH="$cudalib" "$S/bin/train-experts" --device cuda --base /nonexistent --method lora \
	-o "$tmp/run" "$tmp" 2>&1 || true)
case $plugin_msg in
*"cannot be loaded"*|*"not found in"*|*"lacks cuda_"*)
	echo "gpu-bundle: the CUDA plugin does not open from the bundle: $plugin_msg" >&2
	bad=1 ;;
esac
[ $bad = 0 ] || exit 1
if [ "$(id -u)" = 0 ] && command -v unshare > /dev/null && command -v chroot > /dev/null; then
	sh scripts/gpu-bundle/chroot-check.sh "$S" "$cudalib" || exit 1
else
	echo "gpu-bundle: (not root or no unshare/chroot: the chroot check is left out; the ldd check passed)"
fi

rm -rf "$B"
mv "$S" "$B"
echo "gpu-bundle: $B: $(du -sh "$B" | cut -f1) ($(du -sb "$B" | cut -f1) bytes); $(cat "$B/VERSION" | tr '\n' ';')"
echo "gpu-bundle: on the GPU machine: $B/run.sh   (README: $B/README)"
