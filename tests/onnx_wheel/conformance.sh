#!/usr/bin/env bash
# Conformance on the node tests of the `onnx` Python wheel (newer than Debian's ONNX 1.12).
#   conformance.sh PYTHON BUILD_DIR REPORT.md MIN_PASS
# Uses onnx/backend/test/data/node when the wheel ships it; recent wheels ship only the case
# generators, so the data is generated once into BUILD_DIR/onnx-wheel-data (gen_node_data.py).
set -euo pipefail
python=$1 build=$2 report=$3 min_pass=$4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! onnx_dir=$("$python" -c 'import onnx, os; print(os.path.dirname(onnx.__file__))' 2>/dev/null); then
  echo "FAIL: the Python module 'onnx' is not installed for '$python' (scripts/install_deps.sh --python installs it)"
  exit 1
fi
data=$onnx_dir/backend/test/data/node
if [ ! -d "$data" ]; then
  "$python" "$here/gen_node_data.py" "$build/onnx-wheel-data"
  data=$build/onnx-wheel-data/node
fi
version=$("$python" -c 'import onnx; print(onnx.__version__)')
exec "$build/kiln_conformance" --title "ONNX conformance (node tests of the onnx $version wheel)" \
  --report "$report" --min-pass "$min_pass" "$data"
