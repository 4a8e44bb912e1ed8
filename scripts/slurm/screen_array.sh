#!/usr/bin/env bash
# One shard of a virtual screen per Slurm array task; a dependent job merges the shards and
# writes the report. Submit from a login node:
#
#   SPEC=screen.toml OUT=/scratch/$USER/my-screen sbatch --array=1-32 scripts/slurm/screen_array.sh
#
# Every task runs `c2s-studio screen run SPEC --shard I/N --out OUT/shards/I`. Units carry their
# own seeds, so any number of shards gives the same results as one run, and a task that is
# requeued or resubmitted resumes where it stopped. The last task to finish (any order) is not
# special: the merge is a separate job submitted by the first task with `afterok` on the whole
# array, so it runs once, after every shard succeeded.
#
# Environment: SPEC (required), OUT (required), C2S (the c2s-studio binary; default: on PATH),
# C2S_ARGS (extra `screen run` flags, e.g. "--device cuda --dtype bf16 --batch 64").
#SBATCH --job-name=c2s-screen
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=c2s-screen-%A_%a.log
# On GPU nodes add, for example:  #SBATCH --gres=gpu:1  and C2S_ARGS="--device cuda".
set -euo pipefail

: "${SPEC:?set SPEC to the screen's TOML file}"
: "${OUT:?set OUT to the screen's results folder}"
: "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch --array=1-N}"
C2S=${C2S:-c2s-studio}
I=$SLURM_ARRAY_TASK_ID
N=${SLURM_ARRAY_TASK_COUNT:?this Slurm does not set SLURM_ARRAY_TASK_COUNT; use --array=1-N}
if [ "${SLURM_ARRAY_TASK_MIN:-1}" != 1 ] || [ "${SLURM_ARRAY_TASK_MAX:-$N}" != "$N" ]; then
  echo "error: submit with --array=1-N (task ids 1..N, no step); got ${SLURM_ARRAY_TASK_MIN}-${SLURM_ARRAY_TASK_MAX}" >&2
  exit 2
fi
mkdir -p "$OUT/shards"

# The first task schedules the merge once the whole array has succeeded.
if [ "$I" = 1 ] && [ ! -e "$OUT/shards/.merge-submitted" ]; then
  sbatch --dependency="afterok:${SLURM_ARRAY_JOB_ID}" --job-name=c2s-screen-merge \
    --cpus-per-task=2 --mem=8G --time=1:00:00 --output="c2s-screen-merge-%j.log" \
    --wrap="'$C2S' screen merge '$OUT'/shards/* --out '$OUT/merged' && \
            '$C2S' screen report '$OUT/merged' --out '$OUT/report.csv' \
              --selectivity '$OUT/selectivity.csv'"
  touch "$OUT/shards/.merge-submitted"
fi

# shellcheck disable=SC2086  # C2S_ARGS is a list of flags
"$C2S" screen run "$SPEC" --shard "$I/$N" --out "$OUT/shards/$I" ${C2S_ARGS:-}
