# Sourced by scripts/test.sh and scripts/demo.sh: make .venv with multiplan installed.
# Usage: source scripts/setup_env.sh [test]
VENV=${MULTIPLAN_VENV:-$ROOT/.venv}

need_apt() {
    # Install Debian packages when missing (root only); refuse clearly otherwise.
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "multiplan needs the Debian packages: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "== apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

want_apt() {
    # Install Debian packages multiplan works better with (root only); otherwise say what is missing.
    if [ "$(id -u)" = 0 ]; then need_apt "$@"; return; fi
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || echo "note: sudo apt-get install -y $pkg ($WHY)" >&2
    done
}

# CJK fonts, so charts, PDFs and screenshots show Chinese rather than boxes; Pango for WeasyPrint's PDFs
WHY="Chinese in charts and PDFs"
fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk" || want_apt fonts-wqy-microhei
WHY="PDF reports"
want_apt libpango-1.0-0 libpangoft2-1.0-0

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "multiplan needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || { need_apt python3-venv; python3 -m venv "$VENV"; }
fi
stamp="$VENV/.multiplan-installed-${1:-run}"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
    echo "== pip install (${1:-run})"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
    if [ "${1:-}" = test ]; then
        "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]"
    else
        "$VENV/bin/pip" install -q --disable-pip-version-check -e .
    fi
    touch "$stamp"
fi

# The overlay kernel, compiled ahead of time once (some 20 s): at run time it then needs neither numba's
# compiler nor its memory. It needs a C compiler and Python's headers; without them numba compiles it
# on first use instead.
WHY="a lighter, faster-starting overlay kernel"
want_apt gcc libpython3-dev
"$VENV/bin/python" -m multiplan.clipkernel
