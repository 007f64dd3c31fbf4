#!/usr/bin/env bash
# The demo: install multiplan into .venv, load the sample county into the embedded store, detect conflicts,
# check the sample approvals, then serve the web application (pass --no-serve to stop before that).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh
exec "$VENV/bin/multiplan" --store "${MULTIPLAN_STORE:-$ROOT/multiplan.gpkg}" demo "$@"
