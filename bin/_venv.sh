# Sourced by bin/demo and bin/test: make .venv and install the pinned requirements.
# Re-installs only when a requirements file changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "需要 Python 3.11（yiwang needs Python 3.11）: $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || {
    echo "无法创建虚拟环境：请先安装 python3.11-venv（apt-get install python3.11-venv）" >&2
    exit 1
  }
fi
want=$(cat "$@" | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.requirements 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  for req in "$@"; do .venv/bin/python -m pip install -q -r "$req"; done
  echo "$want" > .venv/.requirements
fi
