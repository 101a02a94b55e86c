#!/usr/bin/env bash
# The prepared GPU check (issue 19): run it as is on a GPU machine with no internet.
#
#   bash bench/gpu.sh [OUT_DIR]          # default OUT_DIR: gpu-check
#
# 1. Installs the repo into the current Python (a CUDA torch must already be there; on a
#    machine with none, the CPU wheel the project pins).
# 2. Without an NVIDIA GPU: a dry run. It checks its own steps (the rehearsal's command line,
#    that every step's Python compiles, whether vLLM would be used) and exits 0.
# 3. With one: `python -m harness.rehearsal --full-depth --dtype bfloat16 --device cuda`, the
#    study's four checkpoints at their true 7B and 4B shapes with random weights, through the
#    suite's HF backend (rows: image tokens, peak GPU memory, seconds per item at batch 1 and
#    8, batch invariance, preflight).
# 4. If vLLM imports: the LLaVA-Med rehearsal model at full depth served by vLLM with
#    `--load-format dummy`, and the closed-form grid of one task (brain_tumor, 100 images per
#    class, 12 prompts: 2,400 answers) through the suite's OpenAI backend.
# 5. Prints items per second per model and the projected study-grid time against SPEC 9
#    (under 30 minutes on one H200), and writes everything to OUT_DIR/gpu.json.
# Every step has a time limit; the whole check is meant to finish within 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python}
log() { echo "gpu.sh: $*" | tee -a "$OUT/gpu.log"; }

if ! $PY -c "import torch" 2>/dev/null; then
  log "no torch: installing the pinned CPU wheel (a GPU machine should bring its CUDA torch)"
  $PY -m pip install --quiet torch==2.13.0 || exit 1
fi
$PY -m pip install --quiet --no-deps -e . || $PY -m pip install --quiet -e . || exit 1

GPUS=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU ' )
VLLM=$($PY -c "import vllm; print(vllm.__version__)" 2>/dev/null || echo "")
log "GPUs: $GPUS; vLLM: ${VLLM:-not installed}; torch: $($PY -c 'import torch; print(torch.__version__, torch.cuda.is_available())')"

if [[ "$GPUS" -eq 0 ]]; then
  log "dry mode: no NVIDIA GPU here; checking the steps instead of running them"
  $PY -m harness.rehearsal --help > /dev/null || { log "the rehearsal's command line fails"; exit 1; }
  $PY -m py_compile harness/rehearsal/*.py bench/gpu_report.py || { log "a step does not compile"; exit 1; }
  $PY bench/gpu_report.py --out "$OUT" --dry || exit 1
  log "dry mode: every step checked (rehearsal, report); vLLM step: ${VLLM:+would run}${VLLM:-skipped, not installed}"
  exit 0
fi

log "rehearsal at full depth, bf16, on the GPU"
timeout 360 $PY -m harness.rehearsal --full-depth --dtype bfloat16 --device cuda --json "$OUT/rehearsal.json" \
  | tee -a "$OUT/gpu.log"
status=${PIPESTATUS[0]}

if [[ -n "$VLLM" ]]; then
  log "vLLM: the LLaVA-Med rehearsal model served with --load-format dummy, one task's closed-form grid"
  timeout 300 $PY bench/gpu_report.py --out "$OUT" --vllm | tee -a "$OUT/gpu.log"
fi
$PY bench/gpu_report.py --out "$OUT" | tee -a "$OUT/gpu.log"
exit "$status"
