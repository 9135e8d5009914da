#!/usr/bin/env bash
# Execute every Python vignette (jupytext percent scripts) and render it to HTML with its figures.
#   vignettes/render.sh OUTDIR [name ...]      HIERMIO_VIGNETTE=small|full sets the run size
set -euo pipefail
out="$(realpath -m "${1:-$(dirname "$0")/../.venv/vignettes}")"; shift || true
cd "$(dirname "$0")"
bin="$(realpath ../.venv/bin)"
mkdir -p "$out"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then names=($(ls [a-z]*.py | grep -v '^_' | sed 's/\.py$//')); fi
for name in "${names[@]}"; do
    start=$(date +%s)
    "$bin/jupytext" --quiet --to ipynb --output "$out/$name.ipynb" "$name.py"
    # the kernel finds _setup.py through PYTHONPATH (it runs in the output folder)
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$bin/jupyter" nbconvert --log-level=ERROR --to html --execute --ExecutePreprocessor.timeout=1800 \
        --ExecutePreprocessor.kernel_name=python3 --output-dir "$out" --output "$name" "$out/$name.ipynb" 2>&1 | grep -v "^\[NbConvertApp\]" || true
    test -s "$out/$name.html" || { echo "[vignettes] $name failed to render" >&2; exit 1; }
    echo "[vignettes] $name.html rendered in $(( $(date +%s) - start )) s"
done
