#!/usr/bin/env bash
# The main job on the embedded defaults (local Ray, SQLite): a real architecture search on MQAR at T=64, its
# leaderboard, the winner exported as standalone PyTorch code that is then loaded and run, and the best
# architecture found against the best baseline (accuracy, parameters, decoding-state size).
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
DB="sqlite:///$OUT/einsearch.db"
if $BIN/einsearch searches --db "$DB" --json 2>/dev/null | grep -q '"name": "demo"'; then
  $BIN/einsearch resume demo --db "$DB"          # a second run continues (or just reports) the first
else
  $BIN/einsearch search --config examples/demo-search.toml --db "$DB" ${DEMO_ARGS:-}  # e.g. DEMO_ARGS="--budget 4"
fi
$BIN/einsearch leaderboard --search demo --top 5 --db "$DB"
$BIN/einsearch export --best demo --weights -o "$OUT/best_model.py" --db "$DB"
$BIN/python - "$OUT/best_model.py" <<'PY'
import runpy, sys, torch
exported = runpy.run_path(sys.argv[1])
weights = sys.argv[1][:-3] + ".safetensors"
model = exported["build"](weights=weights).eval()
print(f"exported model: {exported['ARCH']}")
print(f"loaded {weights}; forward on (2, 64) tokens ->", tuple(model(torch.randint(0, 128, (2, 64))).shape))
PY
# The result: the best architecture the search found against the best baseline it was seeded with.
$BIN/python - "$DB" <<'PY'
import sys
from einsearch.report.summary import search_headline
from einsearch.storage import Store
with Store.open(sys.argv[1], create=False) as store:
    print("\n".join(search_headline(store, "demo").lines()))
PY
