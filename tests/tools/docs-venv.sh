#!/usr/bin/env bash
# Prints the path of the docs venv: antsibull-docs, Sphinx, sphinx-ansible-theme and ansible-core from
# docs/requirements.txt, for `make docs` and the docs lint of `make lint`. Made from PyPI the first time,
# then cached under $VIRTOPS_CACHE_DIR keyed by that file and the Python version, like the tools venv of
# bootstrap.sh (and apart from it, so that changing one does not rebuild the other).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/tools/venv-lib.sh
. "$root/tests/tools/venv-lib.sh"
cached_venv docs-venv "$root/docs/requirements.txt"
