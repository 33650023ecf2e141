package main

import (
	"os"
	"runtime/debug"
)

// slaveGCPercent is the slave's GOGC unless the environment sets one. A
// slave's heap is small and steady (about 6 MB live with 1,000 instances,
// most of it the instances' records) and, once its instances run, it
// allocates little (a usage sample every 5 s, statuses as they change).
// At the runtime's default of 100 the heap grows to twice what is live
// before a collection, and the resident memory follows it; at 50 it grows
// by half. The cost is more frequent collections of a small heap: with
// 1,000 idle instances the slave's idle CPU went from 0.53 % to 0.60 % of
// a core, and its RSS from 30.3 MB to 28.3 MB (31.4 to 29.9 MB after 30 s
// idle; BENCHMARKS.md, BenchmarkFootprint). GOGC in the environment wins,
// GOMEMLIMIT is left alone.
const slaveGCPercent = 50

func init() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(slaveGCPercent)
	}
}
