#!/usr/bin/env bash
# isola's demonstration (see ../shared/DESIGN.md). Grows with each isolation mode that exists.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: nothing to show yet"
