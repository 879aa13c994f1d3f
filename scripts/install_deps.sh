#!/usr/bin/env bash
# Installs what kiln needs to build and test on Debian 12 (bookworm). Idempotent: it installs
# only the packages that are missing and touches the network only when something is.
#
#   scripts/install_deps.sh            Debian packages (build, CLI, C++ tests, fuzzing)
#   scripts/install_deps.sh --python   also numpy, onnx and onnxruntime from PyPI (model tests,
#                                      newer ONNX test data); a failure there only warns
#
# Run as root (CI does), or as a user with sudo.
set -euo pipefail

# Build and C++-test dependencies. LLVM 19's CMake package wants zlib, zstd, libedit, libxml2,
# libffi and curl development files to be present even though kiln uses none of them directly.
REQUIRED=(
  cmake ninja-build g++ llvm-19-dev
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev libzstd-dev libedit-dev libxml2-dev libffi-dev libcurl4-openssl-dev
  python3-pip
)
# libFuzzer (clang + its runtime). Installed when the archive has them; scripts/fuzz.sh needs them,
# the default build does not.
OPTIONAL=(clang-19 libclang-rt-19-dev)
PIP_MODULES=(numpy onnx onnxruntime)

want_python=0
for arg in "$@"; do
  case "$arg" in
    --python) want_python=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install_deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

log() { echo "install_deps: $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root to run: $*"; exit 1
  fi
}

# (Outputs are captured before matching: grep -q would end a pipe early, and pipefail would
# then report the writer's SIGPIPE as a failure.)
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *"install ok installed"* ]]; }

# The archive offers a package when apt-cache policy shows a candidate version.
available() { [[ $(apt-cache policy "$1" 2>/dev/null) =~ Candidate:\ [^\(] ]]; }

missing_of() {
  local p
  for p in "$@"; do installed "$p" || echo "$p"; done
}

install_debian_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    log "not a Debian system; install these yourself: ${REQUIRED[*]}"
    return 0
  fi
  local missing optional_missing to_install=() p
  mapfile -t missing < <(missing_of "${REQUIRED[@]}")
  mapfile -t optional_missing < <(missing_of "${OPTIONAL[@]}")
  if [ ${#missing[@]} -eq 0 ] && [ ${#optional_missing[@]} -eq 0 ]; then
    log "all Debian packages present"
    return 0
  fi
  log "apt-get update"
  as_root apt-get update -qq
  to_install=("${missing[@]}")
  for p in "${optional_missing[@]}"; do
    if available "$p"; then to_install+=("$p")
    else log "optional package $p is not in the archive: fuzzing with libFuzzer will be unavailable"
    fi
  done
  [ ${#to_install[@]} -eq 0 ] && return 0
  log "installing: ${to_install[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${to_install[@]}"
}

python_has_modules() {
  python3 - "$@" <<'EOF' 2>/dev/null
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
EOF
}

install_python_packages() {
  if python_has_modules "${PIP_MODULES[@]}"; then
    log "python modules present: ${PIP_MODULES[*]}"
    return 0
  fi
  # Debian 12 marks its Python as externally managed (PEP 668); CI machines are throwaway.
  local flags=(--quiet --disable-pip-version-check --root-user-action=ignore)
  if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    flags+=(--break-system-packages)
  fi
  log "pip install ${PIP_MODULES[*]}"
  if ! python3 -m pip install "${flags[@]}" "${PIP_MODULES[@]}"; then
    log "WARNING: pip install failed; the model tests and the onnx-wheel conformance test will fail"
  fi
}

install_debian_packages
[ "$want_python" -eq 1 ] && install_python_packages
exit 0
