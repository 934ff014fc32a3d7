#!/usr/bin/env bash
# Run the test suite; arguments go to pytest. A run that collects no test fails.
set -uo pipefail
cd "$(dirname "$0")/.."

.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests; treating that as a failure." >&2
    exit 1
fi
exit "$status"
