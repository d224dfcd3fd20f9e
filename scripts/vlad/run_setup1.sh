#!/usr/bin/env bash
# The Setup-I grid for vlad (CLIP-Adapter's; the reference has no VLAD script) (configs/sweeps/vlad_setup1.yaml) through croft-sweep.
# Environment: DATA (required), OUTPUT, BACKBONE, PRETRAINED, EXTRA_OPTS, LAUNCHER, GPUS, WORKERS;
# extra arguments go to croft-sweep run (e.g. --only seed=1, --set KEY VALUE); docs/sweeps.md.
exec "${PYTHON:-python}" -m croft.sweep run "$(dirname "$0")/../../configs/sweeps/vlad_setup1.yaml" "$@"
