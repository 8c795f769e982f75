# Create or refresh the project environment (.venv) and activate it. Sourced by scripts/test and scripts/book.
#
# - torch first, pinned to 2.13.0: on a machine without a GPU, pip finds the CPU wheel
#   (never a multi-GB CUDA build); on a GPU machine the same pin gets the CUDA build.
#   Set BACKPROP2_TORCH to another requirement (and pip options, word-split) to override.
# - then the package, editable, with its dev extra; skipped when pyproject.toml is unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BACKPROP2_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[env] creating $venv with $($python --version)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "[env] installing ${BACKPROP2_TORCH:-torch==2.13.0}"
  # shellcheck disable=SC2086  # deliberately word-split: BACKPROP2_TORCH may carry pip options
  "$venv/bin/python" -m pip install --quiet ${BACKPROP2_TORCH:-torch==2.13.0}
fi
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)"
have="$(cat "$venv/.backprop2-installed" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "[env] installing backprop2lib (editable) with the dev extra"
  "$venv/bin/python" -m pip install --quiet -e "$root[dev]"
  echo "$want" > "$venv/.backprop2-installed"
fi
# The browser tests drive Debian's chromium (no browser download). Install it where we can.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[env] installing Debian's chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[env] could not install chromium; browser tests will fail" >&2
fi
export BACKPROP2_CHROMIUM="${BACKPROP2_CHROMIUM:-$(command -v chromium || true)}"
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
cd "$root"
