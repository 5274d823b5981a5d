#!/usr/bin/env bash
# Create the virtualenv of the BigQuery stand-in (bqemulator) that tests/integration starts as a process.
#
# bqemulator lives in a virtualenv of its own: it needs DuckDB 1.5.5 (the project uses DuckDB 2.x) and it
# registers a pytest plugin we do not want in the project's venv. Offline it aborts unless DuckDB's spatial
# extension is already installed locally, so the extension comes from the `duckdb-extension-spatial` wheel
# and is copied where DuckDB looks for it: $HOME/.duckdb/extensions/v1.5.5/<platform>/.
#
# Usage: scripts/bqemulator-env.sh [VENV_DIR]    (default: $BQEMULATOR_VENV or <repo>/.cache/bqemulator-venv)
# Idempotent: a stamp file records what was installed; rerunning with the same requirements only checks.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-${BQEMULATOR_VENV:-$REPO/.cache/bqemulator-venv}}"
PYTHON="${PYTHON:-python3.11}"
BQEMULATOR_VERSION=1.4.0
DUCKDB_VERSION=1.5.5
# numpy: bqemulator registers its built-in UDFs through DuckDB's Python functions, which need it.
REQUIREMENTS=("bqemulator==$BQEMULATOR_VERSION" "duckdb==$DUCKDB_VERSION" "duckdb-extension-spatial==$DUCKDB_VERSION" numpy)
# Every package of that venv pinned (pip freeze of a working one), as constraints.txt does for the project.
CONSTRAINTS="$REPO/scripts/bqemulator-constraints.txt"
STAMP="$VENV/.aikube-requirements"

# The extension directory is per user: check it even when the venv is there (another $HOME, a cleaned ~/.duckdb).
extension_ok() {
  "$VENV/bin/python" - <<'EOF' >/dev/null 2>&1
import duckdb
duckdb.connect(":memory:").execute("LOAD spatial")
EOF
}

if [[ -x "$VENV/bin/bqemulator" && "$(cat "$STAMP" 2>/dev/null)" == "${REQUIREMENTS[*]} $(cksum < "$CONSTRAINTS")" ]] && extension_ok; then
  exit 0
fi

echo "bqemulator-env: installing into $VENV (bqemulator $BQEMULATOR_VERSION, duckdb $DUCKDB_VERSION)" >&2
if [[ ! -f "$VENV/pyvenv.cfg" ]]; then
  if [[ -e "$VENV" ]]; then
    echo "bqemulator-env: $VENV exists and is not a virtualenv: remove it or choose another folder" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" "${REQUIREMENTS[@]}"

# Copy the extension from the wheel to $HOME/.duckdb/extensions/v<version>/<platform>/ (linux_amd64 here).
"$VENV/bin/python" - <<'EOF'
import pathlib
import shutil

import duckdb
import duckdb_extension_spatial

version = "v" + duckdb.__version__
platform = duckdb.connect(":memory:").execute("PRAGMA platform").fetchone()[0]
source = pathlib.Path(duckdb_extension_spatial.__file__).parent / "extensions" / version / "spatial.duckdb_extension"
target_dir = pathlib.Path.home() / ".duckdb" / "extensions" / version / platform
target_dir.mkdir(parents=True, exist_ok=True)
shutil.copyfile(source, target_dir / "spatial.duckdb_extension")
print(f"bqemulator-env: spatial extension copied to {target_dir}")
EOF

extension_ok || { echo "bqemulator-env: DuckDB cannot load the spatial extension" >&2; exit 1; }
echo "${REQUIREMENTS[*]} $(cksum < "$CONSTRAINTS")" > "$STAMP"
echo "bqemulator-env: ready: $VENV/bin/bqemulator" >&2
