#!/usr/bin/env bash
# Create bench/.seed-venv with the seed library (dicom2fhir 0.1.25) for the side-by-side benchmark.
#
# fhir.resources is pinned to 8.2.0: with 8.3.0 (what an unpinned install resolves to) every seed
# conversion fails (`Extension()` without url; see shared/docs/seed-library.md §0.1).
# Idempotent: does nothing when the venv already imports both pinned versions.
# Override the interpreter with SEED_PYTHON=/path/to/python3.11.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.seed-venv"
py="${SEED_PYTHON:-python3.11}"

check='import importlib.metadata as m, sys
ok = m.version("dicom2fhir") == "0.1.25" and m.version("fhir.resources") == "8.2.0"
sys.exit(0 if ok else 1)'

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "seed venv ready: $venv"
    exit 0
fi

"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "dicom2fhir==0.1.25" "fhir.resources==8.2.0"
"$venv/bin/python" -c "$check"
echo "seed venv created: $venv"
