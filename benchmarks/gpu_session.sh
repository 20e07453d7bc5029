#!/bin/bash
# The GPU checks of issue 12, in parts that each fit the device tool's 10-minute command
# (run from the repository root on the device machine, whose image has jax[cuda], flax,
# optax, networkx, numpy, rich and pytest; nothing is installed):
#
#   bash benchmarks/gpu_session.sh tests        # -m gpu tests, then the population equality and search tests on the GPU
#   bash benchmarks/gpu_session.sh step         # bench_step: flax and cuDNN, hoisting and unroll
#   bash benchmarks/gpu_session.sh population   # bench_population: per-step cost and children per hour
#   bash benchmarks/gpu_session.sh search [P]   # a --quick search twice (P: --population P; 0: per-cell):
#                                               # its time, and whether the two stores are equal
#   bash benchmarks/gpu_session.sh throughput [H] [P]  # issue 32's children per hour: a --quick search of H
#                                               # hours per-cell, then one with --population P (default
#                                               # 0.08 h, P 32), both screened; same_hour.py's table
#   bash benchmarks/gpu_session.sh ladder       # ladder_cost: what a child costs under --quick and the
#                                               # default preset (PTB from $CELLSEARCH_DATA, default data/
#                                               # in the repository: copy ../shared/data/ptb to data/ptb
#                                               # and name data in the device tool's carry)
#
# Everything it prints also goes to $OUT/<part>.log (the device tool brings $OUT back).
set -o pipefail
part=${1:?usage: gpu_session.sh tests|step|population|search|throughput|ladder}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
out=${OUT:-/tmp}/$part.log
py=python3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out"
case $part in
  tests)
    $py -m pytest -q -m gpu tests/ 2>&1 | tee -a "$out"
    $py -m pytest -q tests/nn/test_population.py tests/search/test_search_population.py 2>&1 | tee -a "$out" ;;
  step)
    (cd benchmarks && $py bench_step.py --variants hoist=0,hoist=1,hoist=0/unroll=4,hoist=1/unroll=4,hoist=1/unroll=8) 2>&1 \
      | tee -a "$out" ;;
  population)
    (cd benchmarks && $py bench_population.py --step-cost 1,8,32 \
      && $py bench_population.py --sizes 1,8,32,128 --children 128 --percell-children 16) 2>&1 | tee -a "$out" ;;
  search)
    for p in ${2:-0}; do
      for run in a b; do
        flag=$([ "$p" = 0 ] || echo "--population $p")
        ( time $py -m cellsearch search --quick --deterministic $flag --db "${OUT:-/tmp}/quick-p$p-$run.db" ) 2>&1 \
          | tail -n 25 | tee -a "$out"
      done
      $py - "${OUT:-/tmp}/quick-p$p-a.db" "${OUT:-/tmp}/quick-p$p-b.db" <<'PY' 2>&1 | tee -a "$out"
import sqlite3, sys
rows = [sqlite3.connect(f).execute("SELECT cell_hash, task, hp_key, score, status FROM evaluations ORDER BY id").fetchall()
        for f in sys.argv[1:]]
print("the two searches stored the same evaluations:", rows[0] == rows[1], len(rows[0]))
PY
    done ;;
  throughput)
    h=${2:-0.08}; p=${3:-32}
    for flag in "" "--population $p"; do
      db="${OUT:-/tmp}/throughput$(echo $flag | tr -dc 0-9).db"
      ( time $py -m cellsearch search --quick --hours "$h" $flag --db "$db" ) 2>&1 | tail -n 12 | tee -a "$out"
    done
    (cd benchmarks && $py same_hour.py --stores "${OUT:-/tmp}/throughput.db" "${OUT:-/tmp}/throughput$p.db") 2>&1 \
      | tee -a "$out" ;;
  ladder)
    export CELLSEARCH_DATA=${CELLSEARCH_DATA:-$PWD/data}
    (cd benchmarks && $py ladder_cost.py --preset quick && $py ladder_cost.py --preset default) 2>&1 | tee -a "$out" ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
