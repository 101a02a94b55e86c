#!/usr/bin/env bash
# The suite's command line for CI, shared by every workflow in this folder (and run by
# .ci/run on the CPU against the organism, so it cannot rot). Settings come from the
# environment:
#   MEDVLM_MODELS        comma-separated registry names (default: the organism)
#   MEDVLM_MODELS_FILE   an extra registry TOML (your models, pinned revisions)
#   MEDVLM_WORKERS       pytest-xdist workers: one per GPU (default 1: no xdist)
#   MEDVLM_CACHE_DIR     the response store, restored and saved by the CI cache (default .medvlm-cache)
#   MEDVLM_RESULTS_DIR   results folder to upload (default results)
#   MEDVLM_COMPARE_TO    an earlier run's results folder, for "changes since" (optional)
#   MEDVLM_EXTRA         more pytest arguments, e.g. "-m histopathology" or "--n-per-class=50"
# The exit code is pytest's: the gate. Writes report.html, junit.xml, results/ (summary.json,
# summary.md, responses.csv, changes.csv); summary.md is appended to $GITHUB_STEP_SUMMARY.
set -euo pipefail

args=(-p no:cacheprovider
      "--cache-dir=${MEDVLM_CACHE_DIR:-.medvlm-cache}"
      "--results-dir=${MEDVLM_RESULTS_DIR:-results}"
      "--html=${MEDVLM_REPORT:-report.html}" --self-contained-html
      "--junitxml=${MEDVLM_JUNIT:-junit.xml}")
if [[ -n "${MEDVLM_MODELS:-}" ]]; then args+=("--models=${MEDVLM_MODELS}"); fi
if [[ -n "${MEDVLM_MODELS_FILE:-}" ]]; then args+=("--models-file=${MEDVLM_MODELS_FILE}"); fi
if [[ -n "${MEDVLM_COMPARE_TO:-}" && -f "${MEDVLM_COMPARE_TO}/summary.json" ]]; then
  args+=("--compare-to=${MEDVLM_COMPARE_TO}")
fi
if [[ "${MEDVLM_WORKERS:-1}" -gt 1 ]]; then args+=(-n "${MEDVLM_WORKERS}"); fi
# shellcheck disable=SC2206
extra=(${MEDVLM_EXTRA:-})
exec python -m pytest "${args[@]}" "${extra[@]}"
