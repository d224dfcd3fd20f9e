#!/usr/bin/env bash
# croft's CUDA path, checked by one script (docs/benchmark.md, "GPU check"). It runs the CUDA-marked tests
# (pytest -m cuda), then tools/benchmark.py with ViT-B/16 (random weights, no download). The benchmark
# measures encoder throughput (model-only vs end-to-end), the in-process runner, and fp16 autocast against
# fp32 (logits and energy AUROC). It writes one JSON with every figure and the test summary.
# Budget: under 10 minutes on one GPU.
#
#   scripts/gpu_check.sh [--output FILE] [--device cuda|cpu] [--backbone NAME] [--work-dir DIR]
#                        [--tests PATH]... [--quick] [--dry-run]
#
#   --output FILE    the JSON to write (default gpu_check.json)
#   --device cpu     a CPU run of the same steps (the CUDA tests are then skipped); with --backbone tiny --quick
#                    it is the smoke run the test suite makes
#   --work-dir DIR   keep the synthetic data, feature caches and runs there (default: a temp folder, removed)
#   --tests PATH     test files or folders to collect the CUDA-marked tests from (repeatable; default tests/)
#   --quick          tiny sizes (a smoke run, not figures)
#   --dry-run        print the commands and run nothing
#
# Exit status: 0 when the tests and the benchmark passed; 1 when either failed (the JSON says which
# tests); 2 for bad arguments or, with --device cuda, no CUDA.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
OUTPUT="gpu_check.json"
DEVICE="cuda"
BACKBONE="ViT-B/16"
WORK=""
QUICK=0
DRY=0
TESTS=()
# Seconds per step: together they stay under the 10-minute budget.
TESTS_TIMEOUT="${TESTS_TIMEOUT:-210}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-330}"

die() {
  echo "error: $*" >&2
  exit 2
}

show() {  # a command, arguments with spaces quoted
  local arg out=""
  for arg in "$@"; do
    case "$arg" in *[[:space:]]*) out+=" '$arg'" ;; *) out+=" $arg" ;; esac
  done
  echo "${out# }"
}

needs_value() {
  [ "$2" -ge 2 ] || die "$1 needs a value"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --output) needs_value "$1" $#; OUTPUT="$2"; shift 2 ;;
    --device) needs_value "$1" $#; DEVICE="$2"; shift 2 ;;
    --backbone) needs_value "$1" $#; BACKBONE="$2"; shift 2 ;;
    --work-dir) needs_value "$1" $#; WORK="$2"; shift 2 ;;
    --tests) needs_value "$1" $#; TESTS+=("$2"); shift 2 ;;
    --quick) QUICK=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1'; expected --output FILE, --device cuda|cpu, --backbone NAME, --work-dir DIR, --tests PATH, --quick or --dry-run" ;;
  esac
done
case "$DEVICE" in
  cuda|cpu) ;;
  *) die "--device $DEVICE: expected cuda or cpu" ;;
esac
[ -n "$OUTPUT" ] || die "--output: expected a file name, got an empty string"
case "$OUTPUT" in /*) ;; *) OUTPUT="$PWD/$OUTPUT" ;; esac
[ -d "$(dirname "$OUTPUT")" ] || die "--output $OUTPUT: folder $(dirname "$OUTPUT") does not exist"
if [ -z "$WORK" ]; then
  if [ "$DRY" = 1 ]; then
    WORK="<temp-folder>"
  else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/croft_gpu_check.XXXXXX")" || die "cannot create a temp folder"
    trap 'rm -rf "$WORK"' EXIT
  fi
fi
case "$WORK" in /*|"<temp-folder>") ;; *) WORK="$PWD/$WORK" ;; esac
for i in "${!TESTS[@]}"; do
  case "${TESTS[$i]}" in /*) ;; *) TESTS[$i]="$PWD/${TESTS[$i]}" ;; esac
done
[ ${#TESTS[@]} -gt 0 ] || TESTS=("$REPO/tests")

if [ "$QUICK" = 1 ]; then
  SIZES=(--images-per-class 3 --ood-per-class 3 --batch-size 4 --batches 1 --workers 0
         --epochs 1 --runner-runs 1 --domains sketch --lambda2 5)
else
  WORKERS=$(( $(nproc 2>/dev/null || echo 2) > 8 ? 8 : $(nproc 2>/dev/null || echo 2) ))
  SIZES=(--images-per-class 32 --ood-per-class 12 --batch-size 64 --batches 16 --workers "$WORKERS"
         --epochs 2 --runner-runs 4 --domains sketch photo --lambda2 1 5)
fi
JUNIT="$WORK/cuda_tests.xml"
TEST_CMD=("$PYTHON" -m pytest -q -m cuda --junitxml "$JUNIT" "${TESTS[@]}")
bench_cmd() {
  BENCH_CMD=("$PYTHON" "$REPO/tools/benchmark.py" --backbone "$BACKBONE" --pretrained none --device "$DEVICE"
             --only throughput,runner,precision "${SIZES[@]}" --work-dir "$WORK/benchmark"
             --tests-junit "$JUNIT" --tests-exit-code "$1" --output "$OUTPUT")
}

if [ "$DRY" = 1 ]; then
  bench_cmd "<pytest-exit-status>"
  echo "gpu_check (dry run): in $REPO, with HF_HUB_OFFLINE=1 and CROFT_CACHE_DIR=$WORK/feature_cache:"
  echo "1. (at most $TESTS_TIMEOUT s) $(show "${TEST_CMD[@]}")"
  echo "2. (at most $BENCH_TIMEOUT s) $(show "${BENCH_CMD[@]}")"
  exit 0
fi

if [ "$DEVICE" = cuda ]; then
  "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || die "--device cuda: torch.cuda.is_available() is False on this machine; run it on a CUDA machine (or --device cpu --backbone tiny --quick for a CPU smoke run)"
  command -v nvidia-smi >/dev/null && nvidia-smi -L
fi

mkdir -p "$WORK" || die "--work-dir $WORK: cannot create it"
rm -f "$JUNIT"  # a kept work dir's earlier summary must not stand in for a run that did not finish
export HF_HUB_OFFLINE=1 CROFT_CACHE_DIR="$WORK/feature_cache"
cd "$REPO" || exit 1
started=$SECONDS

echo "== 1/2 CUDA-marked tests (pytest -m cuda)"
timeout "$TESTS_TIMEOUT" "${TEST_CMD[@]}"
tests_rc=$?
[ "$tests_rc" = 124 ] && echo "gpu_check: the tests ran past ${TESTS_TIMEOUT} s and were stopped" >&2

echo "== 2/2 tools/benchmark.py ($BACKBONE, $DEVICE)"
bench_cmd "$tests_rc"
timeout "$BENCH_TIMEOUT" "${BENCH_CMD[@]}"
bench_rc=$?
[ "$bench_rc" = 124 ] && echo "gpu_check: the benchmark ran past ${BENCH_TIMEOUT} s and was stopped" >&2

echo "gpu_check: $((SECONDS - started)) s; tests exit status $tests_rc, benchmark exit status $bench_rc"
if [ "$bench_rc" != 0 ]; then
  echo "error: the benchmark failed (exit status $bench_rc); no new $OUTPUT was written" >&2
  exit 1
fi
if [ "$tests_rc" != 0 ]; then
  echo "error: the CUDA-marked tests failed (pytest exit status $tests_rc); see 'tests' in $OUTPUT" >&2
  exit 1
fi
echo "wrote $OUTPUT"
