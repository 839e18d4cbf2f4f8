#!/usr/bin/env bash
# One call of a session that has a lent GPU (docs/performance.md, "On a lent GPU"), prepared here beforehand.
#
#   bash research/gpu/gpu_session.sh prepare     # here: wheels the GPU machine lacks into .whl/, data into .devdata/
#   device run, command "bash research/gpu/gpu_session.sh run 540", carry [".whl", ".devdata"]
#
# `run SECONDS` installs the wheels and data there, prints the versions, runs the Langevin and Chet benchmarks on
# CUDA unless their JSONs are already in docs/results (a later session skips them), then trains the image tables
# (research/gpu/gpu_tables.py) for what is left of SECONDS, continuing from gpu_state/state.tar.gz when present, and
# packs the state (at most 6 MiB, so the call stays under the 64 MiB it may carry: the repository is ~15 MB and the two
# data sets 34 MB). Everything comes back in $OUT (8 files at most): session.log, the benchmark JSONs, state.tar.gz
# and any FID sample files beside it.
#
# Afterwards, here: copy the returned state.tar.gz into gpu_state/ and commit it (a later session, perhaps on a new
# checkout, continues from it); the sample files go beside it but stay out of git (.gitignore), since --score-fid
# draws them again from the final models when they are missing. Copy the JSONs into docs/results/ (image/benchmarks/,
# ehr/bench/) and write their results.md sections with each benchmark's --from-json. Score FID with
# `python research/gpu/gpu_tables.py --unpack gpu_state/state.tar.gz --score-fid --report`. A session that will train
# no Fashion-MNIST item may carry .devdata/mnist.npz.xz alone.
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-run}
if [ "$mode" = prepare ]; then
  set -e
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0
  .venv/bin/python research/gpu/gpu_data.py pack .devdata
  du -sh .whl .devdata gpu_state 2>/dev/null || du -sh .whl .devdata
  exit 0
fi
[ "$mode" = run ] || { echo "usage: $0 prepare | run SECONDS" >&2; exit 2; }
total=${2:-540}
started=$SECONDS
out=${OUT:?run this on the device machine, where OUT is set}
log=$out/session.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 research/gpu/gpu_data.py install .devdata --site /tmp/site 2>&1 | tee -a "$log" || exit 1
nvidia-smi -L 2>&1 | tee -a "$log"
python3 -c "import torch, transformers, datasets, huggingface_hub; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'datasets', datasets.__version__, 'hub', huggingface_hub.__version__,
torch.cuda.get_device_name())" 2>&1 | tee -a "$log" || exit 1
if [ ! -f docs/results/image/benchmarks/bench_langevin_cuda.json ]; then
  timeout 330 python3 scripts/bench_langevin.py --output "$out/bench_langevin_cuda.json" 2>&1 | tee -a "$log"
fi
if [ ! -f docs/results/ehr/bench/bench_ehr_cuda.json ]; then
  timeout 90 python3 scripts/bench_ehr.py --device cuda --patients 10000 --out-dir /tmp/bench-ehr \
    --results /tmp/bench-ehr/results.md --json-dir "$out" 2>&1 | tee -a "$log"
fi
left=$((total - (SECONDS - started) - 45))  # packing and the copy back
if [ "$left" -gt 60 ]; then
  unpack=()
  [ -f gpu_state/state.tar.gz ] && unpack=(--unpack gpu_state/state.tar.gz)
  python3 research/gpu/gpu_tables.py "${unpack[@]}" --work-dir /tmp/gpu_tables --time-budget-s "$left" \
    --pack "$out/state.tar.gz" --pack-limit-mib 6 2>&1 | tee -a "$log"
else
  echo "no time left for the tables ($left s)" | tee -a "$log"
fi
echo "session call took $((SECONDS - started)) s" | tee -a "$log"
