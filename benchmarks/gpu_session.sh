#!/usr/bin/env bash
# Issue 19's device run, prepared to fit one call of a lent GPU machine (a command may run 10
# minutes; the session has 15, the machine's start included): the test suite as 'make test'
# runs it there, then benchmarks/gpu.py. Each part has a time limit of its own, so that one
# that runs long still leaves the other its turn; the logs are kept under $OUT.
#
# Here, once: the MNIST files, gzipped, into the git-ignored .data/ that travels with 'carry':
#     bash benchmarks/gpu_session.sh --pack
# On the device (the device tool's run):
#     command: bash benchmarks/gpu_session.sh     carry: [".data"]     timeout_s: 600
set -u
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--pack" ]; then
	mkdir -p .data
	for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
		t10k-labels-idx1-ubyte; do
		gzip -9 -c "${IDENTIKIT_DATA:-$HOME/.cache/identikit}/mnist/$name" >".data/$name.gz"
	done
	du -sh .data
	exit 0
fi

OUT=${OUT:-$(mktemp -d)}
# The carried MNIST files; the engine cache starts empty there, as on any new machine.
export IDENTIKIT_DATA=$PWD/.data PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src
python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
echo "cores: $(nproc)"

began=$(date +%s)
started=$began
if command -v make >/dev/null; then
	timeout -k 10 300 make test PY=python3 >"$OUT/tests.log" 2>&1
else # the same run as make's, spelled out
	workers=$(($(nproc) / 2))
	OMP_NUM_THREADS=2 timeout -k 10 300 python3 -m pytest -q -n "$workers" >"$OUT/tests.log" 2>&1
fi
code=$?
pkill -f "pytest" 2>/dev/null # workers a timeout left behind would take gpu.py's cores
echo "== make test PY=python3: exit $code in $(($(date +%s) - started)) s (target < 300 s)"
grep -E "passed|failed|^FAILED|^ERROR|timeout" "$OUT/tests.log" | tail -n 40

# What is left of 570 s (the call's 600, less a margin to bring the logs back), 240 s at least.
left=$((570 - ($(date +%s) - began)))
started=$(date +%s)
timeout -k 10 $((left > 240 ? left : 240)) python3 benchmarks/gpu.py 2>&1 | tee "$OUT/gpu.log"
echo "== benchmarks/gpu.py: exit ${PIPESTATUS[0]} in $(($(date +%s) - started)) s"
