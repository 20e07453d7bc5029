#!/bin/bash
# The strategies at --quick's budget, several seeds each, as NAS benchmarks compare them:
# one `cellsearch search --quick --strategy S --seed N` per strategy and seed, one after the
# other (never two at once: their wall times are the figure's x axis), each without the
# persistent compilation cache (a cache warmed by one search would favour a later search that
# meets the same cells), then one comparison page of all the stores.
#
#   bash benchmarks/strategies.sh OUTDIR [SEEDS] [CORE]
#     OUTDIR  where the stores, logs and compare.html go (resumes: a finished store is kept)
#     SEEDS   search seeds, comma-separated (default 0,1,2)
#     CORE    pin every search to this CPU core with taskset (default: no pinning)
#
# A killed run resumes where it stopped: a store without its .done marker is resumed by the
# search itself (same seed, same store), then the rest follow.
set -euo pipefail
out=${1:?usage: strategies.sh OUTDIR [SEEDS] [CORE]}
seeds=${2:-0,1,2}
pin=()
if [ -n "${3:-}" ]; then pin=(taskset -c "$3"); fi
mkdir -p "$out"
dbs=()
for seed in ${seeds//,/ }; do
  for s in paper aging random; do
    db="$out/$s-$seed.db"
    dbs+=("$db")
    [ -f "$out/$s-$seed.done" ] && continue
    start=$(date +%s)
    "${pin[@]}" cellsearch search --quick --strategy "$s" --seed "$seed" --db "$db" --no-compile-cache \
      > "$out/$s-$seed.log" 2>&1
    echo "$s seed $seed: $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
    touch "$out/$s-$seed.done"
  done
done
cellsearch report "${dbs[@]}" -o "$out/compare.html"
