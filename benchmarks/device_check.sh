#!/usr/bin/env bash
# The device paths of fusion in one script: on a machine with an NVIDIA GPU it runs the test
# suite there (the CUDA tests run instead of skipping), the CLI with --device cuda in every
# timing mode, the memory guard against the GPU's free memory, and both timing benchmarks on
# the GPU. With DEVICE=cpu it runs the same commands on the CPU (a dry run of the script).
#
# Usage: [DEVICE=cuda] [PYTHON=python3] [SKIP_TESTS=1] bash benchmarks/device_check.sh [OUTDIR]
# fusioncli must be importable (installed, or PYTHONPATH=. from the repository root).
# Every step prints "== step" before and "rc=N" after; JSON reports land in OUTDIR.
set -u
out=${1:-device-check}
dev=${DEVICE:-cuda}
py=${PYTHON:-python3}
mkdir -p "$out"

step() {  # step NAME CMD...: run CMD with a 5-minute cap, print its exit status
    local name=$1
    shift
    echo "== $name: $*"
    local t0=$SECONDS
    timeout 300 "$@"
    echo "rc=$? ($((SECONDS - t0)) s)"
}
fusion=("$py" -m fusioncli)

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>/dev/null || echo "no nvidia-smi"
"$py" -c "import platform, torch; print('python', platform.python_version(), 'torch', torch.__version__,
'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU',
'threads', torch.get_num_threads())"

[ -n "${SKIP_TESTS:-}" ] || step tests "$py" -m pytest -q -p no:cacheprovider tests --ignore=tests/test_packaging.py
step inspect-table "${fusion[@]}" inspect dpt-vitb-level --device "$dev" --min-time 0.3
for mode in "" "--backward" "--channels-last" "--dtype float16" "--dtype bfloat16 --autocast" "--compile"; do
    name=$(echo "forward $mode" | tr -d '-' | tr ' ' '_')
    # shellcheck disable=SC2086  # $mode is a list of options
    step "dpt $mode" "${fusion[@]}" inspect dpt-vitb-level --device "$dev" --min-time 0.3 $mode --json -o "$out/dpt_$name.json"
    "$py" - "$out/dpt_$name.json" <<'EOF' || true
import json, sys
try:
    t = json.load(open(sys.argv[1]))["reports"][0]["timing"]
except Exception as e:  # the step above already printed why
    print("  no report:", e); sys.exit()
keys = ("mode", "dtype_mode", "median_ms", "iqr_ms", "cv", "runs", "calls", "compile_ms", "gflops_per_s",
        "cuda_peak_bytes")
print("  " + ", ".join(f"{k}={t.get(k)}" for k in keys if k in t))
EOF
done
step compare "${fusion[@]}" compare 'presets/*.toml' --device "$dev" --min-time 0.2 --format markdown
step crosscheck "${fusion[@]}" inspect aff --in 64x32x32 --in 64x32x32 --out 64 --device "$dev" --no-time --crosscheck
echo "(the next step must be refused with exit 1: about 262 GB of activations)"
step guard "${fusion[@]}" inspect concat --in 64x4000x4000 --in 64x4000x4000 --out 4096 --device "$dev"
step timing-agreement "$py" benchmarks/timing_agreement.py --device "$dev" --repeat 5 --min-time 0.2
step forward-overhead "$py" benchmarks/forward_overhead.py --device "$dev" --rounds 20
step forward-overhead-batch8 "$py" benchmarks/forward_overhead.py --device "$dev" --rounds 20 --batch 8
