# env.sh — sourced by run.sh (and by hand: `. gpu-bundle/env.sh`): puts the bundle's programs on PATH and makes
# the CUDA libraries findable.
#
# The programs find the bundle's own libraries (lib/: the CUDA backend, OpenBLAS, msgpack-c, jansson, ...)
# through their $ORIGIN/../lib run path, wherever the folder is.  The CUDA runtime and cuBLAS are not bundled
# (libcublasLt alone is ~500 MB): they come from the target, searched in this order, the first directory that
# holds each library winning:
#   1. $MEDMOE_CUDA_LIBS (a colon-separated list of directories), if set;
#   2. $CUDA_HOME/lib64, /usr/local/cuda/lib64, /usr/local/cuda-13*/lib64 (a CUDA 13 toolkit or its runtime);
#   3. PyTorch's nvidia-* wheels of `python3` (or $MEDMOE_PYTHON): site-packages/nvidia/*/lib and
#      nvidia/cu13/lib (nvidia-cuda-runtime, nvidia-cublas for CUDA 13 — what a cu13x torch installs);
#   4. the dynamic linker's cache (ldconfig -p).
# The directories found are put in front of LD_LIBRARY_PATH (whatever was there stays, after them: the
# driver's libcuda.so.1 is found the usual way).  The libraries wanted are the major version the bundle was
# built against (CUDA_SONAMES below); the driver must support that CUDA version (CUDA 13: driver ≥ 580).
bundle=$(cd "$(dirname "${BUNDLE_ENV_SH:-$0}")" 2> /dev/null && pwd)
[ -f "$bundle/env.sh" ] || bundle=${MEDMOE_BUNDLE:-$(pwd)}
CUDA_SONAMES="@CUDA_SONAMES@"
_medmoe_dirs=""
_medmoe_missing=""
_medmoe_candidates() {
	printf '%s\n' $(echo "${MEDMOE_CUDA_LIBS:-}" | tr ':' ' ')
	[ -n "${CUDA_HOME:-}" ] && echo "$CUDA_HOME/lib64"
	echo /usr/local/cuda/lib64
	ls -d /usr/local/cuda-13*/lib64 2> /dev/null
	py=${MEDMOE_PYTHON:-python3}
	if command -v "$py" > /dev/null 2>&1; then
		for sp in $("$py" -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2> /dev/null); do
			ls -d "$sp"/nvidia/*/lib "$sp"/nvidia/cu13/lib 2> /dev/null
		done
	fi
}
for _so in $CUDA_SONAMES; do
	_found=""
	for _d in $(_medmoe_candidates); do
		if [ -e "$_d/$_so" ]; then _found=$_d; break; fi
	done
	if [ -z "$_found" ] && command -v ldconfig > /dev/null 2>&1; then
		_p=$(ldconfig -p 2> /dev/null | awk -v s="$_so" '$1 == s { print $NF; exit }')
		[ -n "$_p" ] && _found=$(dirname "$_p")
	fi
	if [ -z "$_found" ]; then
		_medmoe_missing="$_medmoe_missing $_so"
		continue
	fi
	case ":$_medmoe_dirs:" in *":$_found:"*) ;; *) _medmoe_dirs=${_medmoe_dirs:+$_medmoe_dirs:}$_found ;; esac
done
if [ -n "$_medmoe_missing" ]; then
	echo "env.sh: WARNING: not found:$_medmoe_missing (looked in \$MEDMOE_CUDA_LIBS, \$CUDA_HOME/lib64," \
		"/usr/local/cuda*/lib64, python3's nvidia-* wheels, ldconfig): the GPU programs will not start;" \
		"set MEDMOE_CUDA_LIBS to the directory that holds them" >&2
fi
LD_LIBRARY_PATH=$_medmoe_dirs${LD_LIBRARY_PATH:+${_medmoe_dirs:+:}$LD_LIBRARY_PATH}
PATH=$bundle/bin:$PATH
MEDMOE_SCHEMAS=$bundle/schemas
export LD_LIBRARY_PATH PATH MEDMOE_SCHEMAS
MEDMOE_CUDA_DIRS=$_medmoe_dirs
unset _so _found _d _p _medmoe_dirs _medmoe_missing
