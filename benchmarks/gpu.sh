#!/usr/bin/env bash
# Generation benchmark on a CUDA machine, GPU and its host CPUs side by side in one run.
# Needs only jax (with CUDA), numpy, pandas, xarray and tqdm there: the package is put on the path from this
# source tree, so nothing is installed.  Writes <out>/benchmarks_generate_{gpu,gpu_chunk2000,cpu}.{csv,md}.
#   bash benchmarks/gpu.sh [OUT_DIR] [CASES...]      (default: results/ and cases a b c d)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/results}
shift || true
cases=${*:-a b c d}
pkg=$(mktemp -d)
mkdir -p "$pkg/wattscape"
cp "$root"/wattscape/*.py "$pkg/wattscape/"
for d in models inference generation; do ln -s "$root/$d" "$pkg/wattscape/$d"; done
export PYTHONPATH=$pkg PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
"$py" -c "import jax, xarray, pandas; print('jax', jax.__version__, jax.devices(), 'xarray', xarray.__version__, 'pandas', pandas.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# shellcheck disable=SC2086
"$py" "$root/benchmarks/generate.py" --cases $cases --platform cuda --out "$out/benchmarks_generate_gpu" || echo "GPU run failed"
# shellcheck disable=SC2086
"$py" "$root/benchmarks/generate.py" --cases $cases --platform cuda --chunk 2000 --out "$out/benchmarks_generate_gpu_chunk2000" || echo "GPU run failed"
# shellcheck disable=SC2086
"$py" "$root/benchmarks/generate.py" --cases $cases --platform cpu --devices "$(nproc)" --out "$out/benchmarks_generate_cpu"
