# Sourced by benchmarks: a Python virtual environment under bench/venv with the peers from PyPI.
# Never needed by make test.  Usage: . bench/venv.sh; bench_venv tokenizers torch ...
bench_venv() {
	venv="$MEDMOE_TOP/bench/venv"
	if [ ! -x "$venv/bin/python" ]; then
		python3 -m venv "$venv" || { echo "bench: python3 -m venv failed (apt-get install python3-venv)"; return 1; }
	fi
	"$venv/bin/pip" install -q --disable-pip-version-check "$@" || return 1
	PY="$venv/bin/python"
}
