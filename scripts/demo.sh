#!/usr/bin/env bash
# The demo: install multiplan into .venv, then load the sample county into the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh
# CJK fonts for the report's charts (installed when missing and running as root; else the charts show boxes)
if ! fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk"; then
    if [ "$(id -u)" = 0 ]; then need_apt fonts-wqy-microhei; else echo "note: install fonts-wqy-microhei for Chinese in charts" >&2; fi
fi
exec "$VENV/bin/multiplan" --store "${MULTIPLAN_STORE:-$ROOT/multiplan.gpkg}" demo "$@"
