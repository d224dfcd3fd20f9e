# Shared by the CRoFT sweep scripts. Environment:
#   DATA        dataset root (required; the folder that holds PACS/, VLCS/, dtd/, ...)
#   OUTPUT      output root (default: output)
#   BACKBONE    override MODEL.BACKBONE.NAME (e.g. tiny for a CPU smoke test)
#   PRETRAINED  override MODEL.BACKBONE.PRETRAINED (openai, an open_clip tag, a file, or none)
#   PYTHON      python interpreter (default: python)
#   EXTRA_OPTS  extra KEY VALUE overrides appended to every run
set -euo pipefail
if [ -z "${DATA:-}" ]; then
    echo "error: set DATA to the dataset root, e.g. DATA=/path/to/datasets bash $0 ..." >&2
    exit 2
fi
OUTPUT=${OUTPUT:-output}
PYTHON=${PYTHON:-python}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BACKBONE_ARGS=()
[ -n "${BACKBONE:-}" ] && BACKBONE_ARGS+=(--backbone "${BACKBONE}")
PRETRAINED_OPTS=()
[ -n "${PRETRAINED:-}" ] && PRETRAINED_OPTS+=(MODEL.BACKBONE.PRETRAINED "${PRETRAINED}")
read -r -a EXTRA <<< "${EXTRA_OPTS:-}"

# cfg_value [--short-floats] DATASET_YAML TRAINER_YAML KEY...: the merged value of each KEY, one a line.
# Method defaults live in the YAMLs; the scripts read them only to name the run folders.
cfg_value() {
    "${PYTHON}" "${REPO_ROOT}/scripts/cfg_value.py" "$@"
}

# as_float VALUE: a whole number with a decimal point (15 -> 15.0), anything else unchanged; for float
# keys on the command line, which plain yacs rejects as ints (run folders keep the value as given).
as_float() {
    if [[ "$1" =~ ^[-+]?[0-9]+$ ]]; then echo "$1.0"; else echo "$1"; fi
}

# run_one OUTDIR ARGS... : train + evaluate unless OUTDIR/results.json exists.
# A crashed run (no results.json) is redone from its last checkpoint.
run_one() {
    local outdir=$1; shift
    if [ -f "${outdir}/results.json" ]; then
        echo "skip (results.json exists): ${outdir}"
        return 0
    fi
    echo "run: ${outdir}"
    "${PYTHON}" -m croft.train --root "${DATA}" --output-dir "${outdir}" "${BACKBONE_ARGS[@]}" "$@" \
        "${PRETRAINED_OPTS[@]}" "${EXTRA[@]}"
}
