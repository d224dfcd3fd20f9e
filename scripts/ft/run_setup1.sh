#!/usr/bin/env bash
# FT's Setup-I grid with its WiSE-FT stages (configs/sweeps/ft_setup1.yaml) through croft-sweep.
# Environment: DATA (required), OUTPUT, BACKBONE, PRETRAINED, EXTRA_OPTS, LAUNCHER, GPUS, WORKERS;
# extra arguments go to croft-sweep run (e.g. --only seed=1, --set KEY VALUE); docs/sweeps.md.
exec "${PYTHON:-python}" -m croft.sweep run "$(dirname "$0")/../../configs/sweeps/ft_setup1.yaml" "$@"
