#!/usr/bin/env bash
# bench/all.sh: every benchmark of BENCHMARKS.md in one run, then the peers.
#   bench/all.sh            # about 2 minutes on 2 cores; output in bench/out/
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
mkdir -p bench/out
{
  # The control plane: 100,000 placements over 10 and 1000 nodes.
  go test -run XXX -bench SchedulerPlacements -benchtime 100000x -timeout 30m .
  # Launch, restart and footprint: 3 runs each; failover: 5 runs at the default 5 s lease.
  go test -run XXX -bench 'Launch|Restart|Footprint' -benchtime 3x -timeout 30m .
  go test -run XXX -bench Failover -benchtime 5x -timeout 30m .
  # One slave with 10,000 sleep instances: RSS, threads, time until all
  # run and the slave's CPU over 60 s of idling (about 3 minutes). Only
  # BenchmarkFootprint: the count also sizes BenchmarkRunnerFootprint,
  # whose 10,000 runners in the test process would fill its descriptors.
  # With RLIMIT_NOFILE under about 31,000 (3 descriptors an instance, and
  # gdpm-slave raises the hard limit only with CAP_SYS_RESOURCE), the
  # slave refuses what does not fit and the numbers are of those that run
  # (refused-fds says how many were refused).
  GDPM_FOOTPRINT_INSTANCES=10000 GDPM_FOOTPRINT_IDLE=60s \
    go test -run XXX -bench '^BenchmarkFootprint$' -benchtime 1x -timeout 30m .
  # The same 10,000 with the slave's -discard-output: one descriptor an
  # instance (its pidfd), so all 10,000 fit within a limit of 20,000.
  GDPM_FOOTPRINT_DISCARD=1 GDPM_FOOTPRINT_INSTANCES=10000 GDPM_FOOTPRINT_IDLE=60s \
    go test -run XXX -bench '^BenchmarkFootprint$' -benchtime 1x -timeout 30m .
} 2>&1 | tee bench/out/go-bench.txt
bench/peers.sh
