#!/bin/bash
# The checks of #14 part 1 that need a CPU with AVX512_BF16 (or AMX), run on a lent device machine from the bundle
# that tools/device-bundle.sh packed (no Swift or Debian packages there). Writes everything under $OUT:
#   cpu.txt            the CPU and its bf16 flags
#   bf16-tests.txt     IENetTests.BF16ConvTests (per-layer rounding bound, whole-step gradients per layer)
#   helloworld-*.txt   HelloWorld trained in fp32 and in bf16 (same seed), and Val Dice of each at the last epoch
#   bench.txt          make bench's engine section (training step, fp32 and bf16, against PyTorch when the
#                      machine's python3 has torch) and the sgemm peak with the machine's best OpenBLAS kernels
# With the run tool, from this checkout:  command "tools/device-check.sh", carry [".device"], timeout_s 540.
# Here (no bf16), `tools/device-check.sh --anyway` runs the same steps so that the script itself is checked.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ie-device-out}
mkdir -p "$OUT"
THREADS=${DEVICE_THREADS:-8}
EPOCHS=${DEVICE_EPOCHS:-40}

{ grep -m1 'model name' /proc/cpuinfo; echo "cores: $(nproc)"
  echo "bf16 flags: $(grep -m1 -o -w -E 'avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"; } \
  | tee "$OUT/cpu.txt"
if ! grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo && [ "${1:-}" != "--anyway" ]; then
  echo "device-check: this CPU has neither avx512_bf16 nor amx_bf16: nothing here can run bf16" | tee -a "$OUT/cpu.txt"
  exit 0
fi

BUNDLE=.device/ie-device.tar.xz
[ -f "$BUNDLE" ] || { echo "device-check: $BUNDLE missing: run tools/device-bundle.sh and carry .device" >&2; exit 1; }
D=$(mktemp -d /tmp/ie-device.XXXXXX)
tar -C "$D" -xJf "$BUNDLE" || { echo "device-check: cannot unpack $BUNDLE (xz missing?)" >&2; exit 1; }
D=$D/ie-device
echo "bundle built at commit $(cat "$D/COMMIT"), checkout at $(git rev-parse HEAD 2>/dev/null || echo '?')" | tee -a "$OUT/cpu.txt"
# Every binary through the bundled loader and libraries, whatever the machine's own glibc.
mkdir -p "$D/wrap"
for b in "$D"/bin/*; do
  printf '#!/bin/sh\nexec "%s/lib/ld-linux-x86-64.so.2" --library-path "%s/lib" "%s" "$@"\n' "$D" "$D" "$b" \
    > "$D/wrap/$(basename "$b")"
  chmod +x "$D/wrap/$(basename "$b")"
done
export PATH="$D/wrap:$PATH"

echo "== BF16ConvTests"
timeout 240 ie-toolboxPackageTests.xctest IENetTests.BF16ConvTests > "$OUT/bf16-tests.txt" 2>&1
echo "exit status $?" >> "$OUT/bf16-tests.txt"
tail -4 "$OUT/bf16-tests.txt"

echo "== HelloWorld, fp32 and bf16 side by side ($THREADS threads each, $EPOCHS epochs)"
W=$(mktemp -d /tmp/ie-device-runs.XXXXXX)
ie-synth --output_folder="$W/datasets/HelloWorld" --quiet > /dev/null
printf 'model_configs_dirs: [%s/configs]\nruns_dir: runs\ndatasets_dir: datasets\nmodels_dir: models\n' "$PWD" \
  > "$W/settings.yml"
train() {  # precision cpu-list
  local run
  run=$(ie-split --settings="$W/settings.yml" --model=HelloWorld --num_epochs="$EPOCHS") || return 1
  OMP_NUM_THREADS=$THREADS taskset -c "$2" ie-train --settings="$W/settings.yml" --run="$run" --precision="$1" \
    --threads="$THREADS" > "$OUT/helloworld-$1.txt" 2>&1
  echo "exit status $?" >> "$OUT/helloworld-$1.txt"
  echo "$1 last epoch: $(tail -1 "$run/outputs/Val/epoch_metrics.csv")" >> "$OUT/helloworld-$1.txt"
}
train fp32 "0-$((THREADS - 1))" & train bf16 "$THREADS-$((2 * THREADS - 1))" & wait
head -1 "$W"/runs/*/*/outputs/Val/epoch_metrics.csv 2>/dev/null | tail -1
grep -h 'last epoch' "$OUT"/helloworld-*.txt

echo "== make bench, engine section (training step, fp32 and bf16)"
peer=(--skip-peers)
python3 -c 'import torch' 2>/dev/null && peer=(--peer-python "$(command -v python3)")
timeout 300 python3 bench/run_bench.py --sections sgemm,engine --threads 1 --repeats 2 --ie-bench "$D/wrap/ie-bench" \
  "${peer[@]}" --ie-args "--backends dnnl --precision fp32,bf16 --skip-conv" > "$OUT/bench.txt" 2> "$OUT/bench-raw.txt"
echo "exit status $?" >> "$OUT/bench.txt"
tail -15 "$OUT/bench.txt"
