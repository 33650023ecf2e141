// Package proc is the Linux machinery under gdpm's slaves, apart from the
// cluster logic; the runner of one instance (internal/runner) is built on
// it:
//
//   - One epoll loop (fdpoller.go) watches every process's exit (a pidfd,
//     pidfd.go) and output pipes (logpump.go) for the whole process: no
//     goroutine nor thread per instance.
//   - Groups (pgroups.go) keeps the live process groups so that none
//     outlives the slave: a watchdog process (watchdog.go) kills them when
//     the slave dies, a record on disk lets the next run kill what a
//     previous run left, and an optional child subreaper (subreaper.go)
//     reaps the orphans of the instances.
//   - procfs.go is the one /proc walker and the one kill-until-gone loop.
//   - spawn.go starts a process with one pidfd and reaps it, without
//     os/exec (which keeps a command, an environment and a second pidfd
//     per process); once the process holds thousands of descriptors,
//     from a thread with a descriptor table of its own (spawner.go), so
//     that a start does not copy them all. fds.go counts them.
//   - lowlevel.go is what the runner uses: AcquirePoller, Spawn,
//     WatchExit, Reap, OpenPumps, SignalGroup, KillGroupsUntilGone,
//     StartTime.
//
// Everything here needs Linux (pidfd, epoll, prctl, /proc). On other
// systems the package builds, so that gdpm's master and client do, but
// Supported is false and OpenGroups fails with ErrUnsupported: gdpm.NewSlave
// checks Supported first.
package proc
