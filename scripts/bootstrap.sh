# Sourced by ./run and ./run-tests: make $VENV hold the pinned set they need.
#   ./run        requirements.txt      (what the service needs to run)
#   ./run-tests  requirements-dev.txt  (that, and the test, lint and browser tools)
# The caller sets `requirements` to its file. Set PYTHON to choose the interpreter
# (default: python3; 3.11 or newer) and VENV to choose where the virtualenv lives.

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
requirements="${requirements:-requirements.txt}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python 3.11+ or set PYTHON=/path/to/python3" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python 3.11+ is needed, $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "Creating the virtualenv in $VENV ..." >&2
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        echo "error: could not create $VENV (on Debian/Ubuntu: apt install python3-venv)" >&2
        exit 1
    fi
fi
# Installs only when a pinned package is missing or at another version.
if ! "$VENV/bin/python" scripts/requirements_met.py "$requirements"; then
    echo "Installing $requirements into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
fi
