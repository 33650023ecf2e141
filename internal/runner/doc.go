// Package runner supervises one instance's process through its whole
// life: start it in a process group of its own, watch it, stop it
// (SIGTERM to the group, SIGKILL after a grace period), restart it per
// policy with a capped exponential delay and within a restart limit, and
// check its health. It knows nothing of services, nodes or etcd: gdpm's
// slave (the root's slaverunner.go) turns an assignment into a Config and
// a Status into an InstanceStatus.
//
// What it builds on is internal/proc: the shared epoll loop that watches
// every process's exit and output, the start with one pidfd, and the /proc
// walkers. Where a policy needs the host (log files, cgroups), the Config
// takes a hook: Output, Limits.
//
// A runner holds no goroutine while its process runs or waits to restart:
// it is driven by events (the exit, a timer, a health verdict, Stop), and
// its steps run on a small pool shared by every runner (runner_linux.go).
// A running process costs its runner three descriptors (its pidfd and two
// output pipes) and under 2 KB of heap; BenchmarkRunnerFootprint at the
// root measures it.
//
// Supervision needs Linux. Elsewhere the package builds, so that gdpm's
// master and client do, but Start reports every start as failed with
// proc.ErrUnsupported (gdpm.NewSlave refuses first).
package runner
