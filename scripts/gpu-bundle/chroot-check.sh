#!/bin/sh
# chroot-check.sh BUNDLE CUDA_LIB_DIR — run the bundle's programs in a root that holds nothing but glibc,
# libstdc++, libgcc_s, the CUDA libraries (bind-mounted read-only) and the bundle (read-only), so that a library
# the bundle forgot cannot be found in /usr/lib.  Called by scripts/gpu-bundle.sh as root, in a private mount
# namespace (unshare -m).  CPU-only runs (this machine has no GPU; the GPU paths are what the bundle is for):
# every program starts, test_backend_ops passes its CPU configurations, check_model's self-test passes, and a tiny
# train-experts + eval-exam pipeline runs on the bundle's data.
set -eu
S=$(cd "$1" && pwd)
cudalib=$2
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R/lib64" "$R/lib/x86_64-linux-gnu" "$R/bundle" "$R/cuda" "$R/tmp" "$R/proc" "$R/dev"
sys=/lib/x86_64-linux-gnu
for l in libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libstdc++.so.6 libgcc_s.so.1; do
	[ -e "$sys/$l" ] && cp -L "$sys/$l" "$R/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
chmod 1777 "$R/tmp"
# the commands, one per line: EXPECTED_EXIT<TAB>program and arguments (run with cwd /tmp)
cat > "$R/cmds" << 'EOF'
0	/bundle/bin/init-base --version
0	/bundle/bin/train-experts --version
0	/bundle/bin/stream2json --version
0	/bundle/bin/eval-exam --help
1	/bundle/bin/check_model -p
2	/bundle/bin/bench-train
0	/bundle/bin/test_backend_ops
0	/bundle/bin/init-base --arch qwen3 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.1 -o /tmp/f32
0	/bundle/bin/init-base --arch qwen3 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.1 --dtype bf16 -o /tmp/bf16
0	/bundle/bin/check_model -c -m mingmoe /tmp/f32 /tmp/bf16
0	/bundle/bin/train-experts --base /tmp/f32 --method sparsedoctor --steps 3 --batch-tokens 256 --con-queue 32 --con-proj 8 -q -o /tmp/run /bundle/data/shards
0	/bundle/bin/stream2json --validate /tmp/run/metrics.mpk
0	/bundle/bin/eval-exam -q --base /tmp/f32 --adapter /tmp/run --limit 5 -o /tmp/pred /bundle/data/exam.mpk
0	/bundle/bin/stream2json --validate /tmp/pred
EOF
[ -f "$S/data/exam.mpk" ] || sed -i '/exam.mpk/d; /\/tmp\/pred$/d' "$R/cmds"
unshare -m sh -c '
	set -eu
	R=$1 S=$2 cudalib=$3 chroot=$4
	mount --bind "$S" "$R/bundle" && mount -o remount,bind,ro "$R/bundle"
	mount --bind "$cudalib" "$R/cuda" && mount -o remount,bind,ro "$R/cuda"
	mount -t proc proc "$R/proc"
	touch "$R/dev/null" && mount --bind /dev/null "$R/dev/null"
	fail=0
	while IFS="$(printf "\t")" read -r want cmd; do
		# shellcheck disable=SC2086
		if out=$(env -i PATH=/bundle/bin LD_LIBRARY_PATH=/cuda OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive \
			HOME=/tmp TMPDIR=/tmp "$chroot" "$R" $cmd 2>&1); then rc=0; else rc=$?; fi
		if [ "$rc" != "$want" ] || echo "$out" | grep -q "error while loading shared libraries"; then
			echo "gpu-bundle: chroot: $cmd: exit $rc (wanted $want): $(echo "$out" | tail -3 | tr "\n" " ")" >&2
			fail=1
		fi
	done < "$R/cmds"
	exit $fail
' sh "$R" "$S" "$cudalib" "$(command -v chroot)"
echo "gpu-bundle: chroot check passed: $(wc -l < "$R/cmds") commands in a root with only glibc, libstdc++, libgcc_s, the CUDA libraries and the bundle"
