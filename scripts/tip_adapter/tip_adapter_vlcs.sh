#!/usr/bin/env bash
# Tip-Adapter-F on VLCS, leave-one-domain-out over its 4 held-out domains (Setup-II).
# Same arguments as tip_adapter_pacs.sh (DATASET is VLCS, or VLCS_DTD ...); only the domain list differs.
HELDOUT_DOMAINS="labelme sun pascal caltech" exec bash "$(dirname "$0")/tip_adapter_pacs.sh" "$@"
