#!/usr/bin/env bash
# Runs every benchmark, each side by side with its peer in the same run, and
# rewrites the tables in bench/results/. Slow (tens of minutes under TCG); run
# on a quiet machine. Each script takes N=<runs> from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in runtime run-container api pull vm vm-isola vm-arch runtime-vm; do
  echo "== bench/$b.sh"
  "bench/$b.sh"
done
