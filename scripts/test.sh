#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite: pytest -q tests
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Run from the tests folder so `hear_suite` is the installed wheel, not the source tree.
cd tests && python3 -m pytest -q -p no:cacheprovider "$@" .
