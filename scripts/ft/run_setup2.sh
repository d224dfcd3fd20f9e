#!/usr/bin/env bash
# FT's Setup-II grids for PACS and VLCS with their WiSE-FT stages (configs/sweeps/ft_setup2_{pacs,vlcs}.yaml)
# through croft-sweep. Environment: DATA (required), OUTPUT, BACKBONE, PRETRAINED, EXTRA_OPTS, LAUNCHER,
# GPUS, WORKERS; extra arguments go to croft-sweep run (e.g. --only seed=1); docs/sweeps.md.
exec "${PYTHON:-python}" -m croft.sweep run "$(dirname "$0")/../../configs/sweeps/ft_setup2_pacs.yaml" \
    "$(dirname "$0")/../../configs/sweeps/ft_setup2_vlcs.yaml" "$@"
