#!/usr/bin/env bash
# The CI cache key of the response store: the suite's version and everything that decides
# a stored answer's key (the registries with their pinned revisions, the prompts, the
# tasks). An unchanged model then finds all its answers and costs no GPU time; a new
# revision, prompt or suite version starts a new store (answers are keyed anyway: the key
# only decides which store is restored).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(python -c "import importlib.metadata as m; print(m.version('medvlm-fragility'))" 2>/dev/null || echo dev)
digest=$(cat fixtures/models.toml fixtures/prompts.toml fixtures/tasks.toml ${MEDVLM_MODELS_FILE:-} | sha256sum | cut -c1-16)
echo "medvlm-store-${version}-${digest}"
