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
    rm -f "$out/$name.html"  # a page from an earlier run must not pass for this one
    # the kernel finds _setup.py through PYTHONPATH (it runs in the output folder)
    status=0
    # a rendered page is static: no progress bars in it (a notebook run by a user shows them)
    HIERMIO_PROGRESS=0 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$bin/jupyter" nbconvert --log-level=ERROR --to html --execute \
        --ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.kernel_name=python3 --output-dir "$out" \
        --output "$name" "$out/$name.ipynb" > "$out/$name.log" 2>&1 || status=$?
    if [ "$status" != 0 ] || [ ! -s "$out/$name.html" ]; then
        echo "[vignettes] $name failed (nbconvert exit status $status); its log:" >&2
        tail -40 "$out/$name.log" >&2
        exit 1
    fi
    echo "[vignettes] $name.html rendered in $(( $(date +%s) - start )) s"
done
