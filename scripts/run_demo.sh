#!/usr/bin/env bash
# The main job: install, then the project workflow on the bundled demo corpus
# (convert, train, evaluate, visualize, package) with the bundled MiniLM encoder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m spacy project run all project
