#!/usr/bin/env bash
# Several text_table.py runs at once, one process per (config, seed), all on one device: the text config sweep.
#
#   STEPS=3000 BATCH=64 OUTDIR=runs/text_sweep bash research/text/text_sweep.sh
#   STEPS=6000 OUTDIR=runs/text_sweep_6000 RUNDIR=runs/text_sweep EXTRA="--resume" bash research/text/text_sweep.sh
#
# Each line of CONFIGS is "name|models|config overrides (JSON)"; every config runs with each seed in SEEDS. The
# results land in $OUTDIR/<name>_seed<N>.json (and .log), the models in $RUNDIR/<name>_seed<N>/ (RUNDIR defaults to
# OUTDIR; with --resume in EXTRA the runs continue the models there); research/text/text_sweep_summary.py tabulates them.
set -u
OUTDIR=${OUTDIR:-runs/text_sweep}
RUNDIR=${RUNDIR:-$OUTDIR}
DATA=${DATA:-kjv}
STEPS=${STEPS:-3000}
BATCH=${BATCH:-64}
SEEDS=${SEEDS:-"0 1 2"}
METRIC_ARGS=${METRIC_ARGS:-"--num-test 1555 --num-generated 10000 --lm-steps 3000"}
EXTRA=${EXTRA:-}
PYTHON=${PYTHON:-python}
CONFIGS=${CONFIGS:-'vae-d05|lm vae|{"decoder_dropout": 0.5}
ebm-T005-s01|ebm|{"decoder_dropout": 0.5, "sampler_config.posterior_noise_scale": 0.05, "sampler_config.prior_step_size": 0.1}
ebm-T02-s01|ebm|{"decoder_dropout": 0.5, "sampler_config.posterior_noise_scale": 0.2, "sampler_config.prior_step_size": 0.1}'}
mkdir -p "$OUTDIR"
pids=()
while IFS='|' read -r name models overrides; do
  [ -z "$name" ] && continue
  for seed in $SEEDS; do
    tag="${name}_seed${seed}"
    OMP_NUM_THREADS=1 $PYTHON scripts/text_table.py --data "$DATA" --max-steps "$STEPS" --batch-size "$BATCH" \
      --seed "$seed" --models $models --config-overrides "$overrides" $METRIC_ARGS $EXTRA --work-dir "$RUNDIR/$tag" \
      --output "$OUTDIR/$tag.json" --results-md "$OUTDIR/$tag.md" --section "$tag" >"$OUTDIR/$tag.log" 2>&1 &
    pids+=($!)
  done
done <<<"$CONFIGS"
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
