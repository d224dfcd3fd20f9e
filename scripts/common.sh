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
