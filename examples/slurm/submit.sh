#!/usr/bin/env bash
# ./examples/slurm/submit.sh STUDY.yaml [TASKS]: the array of `ablate run` tasks, then the report after it.
# Run from the project folder (where .venv is); ABLATE_STORAGE must be set.
set -euo pipefail
export STUDY="$1"
tasks="${2:-4}"
: "${ABLATE_STORAGE:?set ABLATE_STORAGE to a PostgreSQL URL every node reaches}"
mkdir -p logs
here="$(dirname "$0")"
.venv/bin/ablate validate "$STUDY"  # refuse a broken study before anything is queued
array=$(sbatch --parsable --export=ALL --array="0-$((tasks - 1))" "$here/array.sbatch")
sbatch --export=ALL --dependency="afterany:${array%%;*}" "$here/report.sbatch"
echo "array job $array: $tasks tasks; the report follows it"
