#!/usr/bin/env bash
# One command on a GPU host: offrl's CUDA tests, the CPU tests of graph mode's control flow, and training +
# evaluation throughput for IQL, IDQL, EDP and FQL at E = 1, 8, 32 seeds in modes off / on / graph.
# Writes into OUT: cuda-tests.txt, throughput.jsonl (one JSON row per configuration), throughput.txt (the
# table), summary.txt. Installs nothing when the environment is ready; otherwise installs the wheels of
# benchmarks/gpu_wheels.sh from WHEELS (default .whl) with --no-index into a private folder.
#
#   bash benchmarks/gpu_check.sh [OUT] [--quick]
#
# --quick: E = 1, 32 and modes off, graph only (for a short lease). Budget: about 6 minutes on one
# H100-class GPU for the full set (rows that would not fit are reported as not measured, never dropped).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
[ "$out" = "--quick" ] && out=gpu-check
quick=0
for a in "$@"; do [ "$a" = "--quick" ] && quick=1; done
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}
export OFFRL_BENCH_DIR=${OFFRL_BENCH_DIR:-$PWD/$out/bench}
start=$(date +%s)

need() { python3 - <<'PY'
import importlib, sys
missing = [m for m in ("torch", "numpy", "gymnasium", "mujoco", "minari", "einops", "rich", "pandas", "h5py",
                       "filelock", "scipy") if importlib.util.find_spec(m) is None]
print(" ".join(missing)); sys.exit(1 if missing else 0)
PY
}
if ! missing=$(need); then
  wheels=${WHEELS:-.whl}
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "missing Python packages: $missing; run benchmarks/gpu_wheels.sh where the package index is reachable" >&2
    exit 2
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/offrl-site \
    "$wheels"/*.whl || exit 2
  export PYTHONPATH="$PYTHONPATH:/tmp/offrl-site"
  need >/dev/null || { echo "still missing: $(need)" >&2; exit 2; }
fi
python3 - <<'PY' | tee "$out/summary.txt"
import torch
assert torch.cuda.is_available(), "no CUDA device visible to PyTorch"
p = torch.cuda.get_device_properties(0)
print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2

echo "== CUDA tests and graph-mode control flow" | tee -a "$out/summary.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_graph_mode.py 2>&1 \
  | tee "$out/cuda-tests.txt" | tail -n 3 | tee -a "$out/summary.txt"

echo "== throughput (training + evaluation)" | tee -a "$out/summary.txt"
if [ $quick -eq 1 ]; then seeds="1 32"; modes="off graph"; else seeds="1 8 32"; modes="off on graph"; fi
left=$(( 330 - ($(date +%s) - start) ))
timeout $(( left > 60 ? left : 60 )) python3 benchmarks/throughput.py --device cuda --pairings iql idql edp fql \
  --seeds $seeds --modes $modes --eval --seconds 2 --data-steps 200000 --out "$out/throughput.jsonl" \
  2> "$out/throughput.log" | tee "$out/throughput.txt"
status=${PIPESTATUS[0]}
[ $status -eq 124 ] && echo "throughput: stopped at the time budget; rows measured so far are in throughput.log" \
  | tee -a "$out/summary.txt"
grep '^  measured' "$out/throughput.log" | sed 's/^  measured //' > "$out/rows-so-far.jsonl" || true
echo "== done in $(( $(date +%s) - start )) s; rows: $(wc -l < "$out/rows-so-far.jsonl")" | tee -a "$out/summary.txt"
