#!/usr/bin/env bash
# CoOp on VLCS, leave-one-domain-out over its 4 held-out domains (Setup-II).
# Same arguments as coop_pacs.sh (DATASET is VLCS, or VLCS_DTD ...); only the domain list differs.
HELDOUT_DOMAINS="labelme sun pascal caltech" exec bash "$(dirname "$0")/coop_pacs.sh" "$@"
