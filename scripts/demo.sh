#!/usr/bin/env bash
# The demo: install multiplan into .venv, then load the sample county into the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh
exec "$VENV/bin/multiplan" --store "${MULTIPLAN_STORE:-$ROOT/multiplan.gpkg}" demo "$@"
