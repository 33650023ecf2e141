//go:build linux

package proc

import (
	"os"
	"syscall"
)

// Starting and reaping a process without os/exec. exec.Cmd and os.Process
// keep, for each running process, the command, its whole environment and
// (since Go 1.23) a pidfd of their own, beside the one the poller watches:
// a thousand idle instances held a thousand copies of the environment and
// two thousand pidfds. Spawn returns the one pidfd, and Reap waits for the
// exit status itself.

// Spawn starts path with argv and env in dir ("" inherits this process's)
// in a process group of its own, with files as its descriptors 0, 1 and 2,
// and returns its pid and a pidfd (-1 where the kernel has none; the caller
// gives it to WatchExit). An error reads as os.StartProcess's:
// "fork/exec PATH: ...".
//
// While a poller is acquired and this process holds many descriptors, the
// fork happens on the spawning thread (spawner.go), whose descriptor table
// holds only what the child gets.
func Spawn(path string, argv, env []string, dir string, files [3]uintptr) (pid, pidfd int, err error) {
	if s := currentSpawner(); s != nil && manyOpenFiles() {
		pid, err = s.start(path, argv, env, dir, files)
		if err != nil {
			return 0, -1, &os.PathError{Op: "fork/exec", Path: path, Err: err}
		}
		return pid, -1, nil
	}
	pidfd = -1
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files[:],
		// Pdeathsig is tied to the starting OS thread; Go only ends a
		// thread when a goroutine exits while locked to it, which gdpm
		// never does, so in practice it fires when the slave dies.
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, PidFD: &pidfd},
	}
	pid, err = syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, -1, &os.PathError{Op: "fork/exec", Path: path, Err: err}
	}
	return pid, pidfd, nil
}

// Reap reaps pid, a child of this process that has exited (WatchExit said
// so), and returns its exit code, 128+signal for a signal. An error (the
// child was reaped by someone else) comes with code -1.
func Reap(pid int) (code int, err error) {
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	switch {
	case err != nil:
		return -1, os.NewSyscallError("wait4", err)
	case ws.Signaled():
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// spawnThreadAbove is the number of open descriptors above which a start
// goes through the spawning thread: below it, copying the table costs
// less than handing the start to the thread and back (about 0.25 ms on a
// loaded 2-core machine, what copying 3,000 descriptors costs). A
// variable for the tests.
var spawnThreadAbove = 3000

// manyOpenFiles reports whether this process holds more than
// spawnThreadAbove descriptors.
func manyOpenFiles() bool {
	if spawnThreadAbove <= 0 {
		return true
	}
	open, _, err := OpenFiles()
	return err == nil && open > spawnThreadAbove
}

// SpawnThreadVar, set in the environment of a test binary that calls
// SpawnThreadForTests, makes every start go through the spawning thread.
const SpawnThreadVar = "GDPM_TEST_SPAWN_THREAD"

// SpawnThreadForTests makes every start go through the spawning thread,
// whatever the table holds, when the environment sets SpawnThreadVar. A
// slave forks from the thread only above 3,000 open descriptors, which no
// test of the packages that start processes reaches: CI runs them once
// more with it set. Call it from TestMain, before any start.
func SpawnThreadForTests() {
	if os.Getenv(SpawnThreadVar) != "" {
		spawnThreadAbove = 0
	}
}
