//go:build linux

package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Every instance holds three descriptors for its whole life (its output
// pipes and its pidfd), so RLIMIT_NOFILE bounds how many instances one
// slave runs: about 6,600 at a limit of 20,000. Go raises
// its own soft limit to the hard one at start; only the hard limit stands
// in the way, and only a privileged process (CAP_SYS_RESOURCE) may raise
// it.
//
// raiseFileLimit raises the hard limit to want (fs.nr_open when want is
// 0) and then executes this program again, same pid, same arguments. The
// new image starts with the original soft limit under the higher hard
// one, which is the state Go's runtime handles: it raises its own soft
// limit to the hard one and gives every child it starts the soft limit
// the process started with. Raising the soft limit here instead would
// hand it to every instance, and a program that walks its descriptor
// range (closing all of them before it execs, say) would walk a million.
// The instances' hard limit is the raised one: it is a ceiling they may
// lift their own soft limit to, nothing more.
//
// It returns (after logging why) when nothing is to be done or the raise
// is not allowed; it does not return when it executes the program again.
func raiseFileLimit(want int64, log *slog.Logger) {
	if want < 0 {
		return
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the descriptor limit", "err", err)
		return
	}
	if want == 0 {
		want = nrOpen()
	}
	if rl.Max >= uint64(want) {
		log.Info("descriptor limit", "soft", rl.Cur, "hard", rl.Max)
		return
	}
	// Go has raised this image's soft limit already; what the process
	// started with is what Go hands its children, so ask one.
	soft := childSoftLimit()
	if soft == 0 || soft > rl.Cur {
		soft = rl.Cur
	}
	raised := syscall.Rlimit{Cur: soft, Max: uint64(want)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		log.Warn("cannot raise the descriptor limit; instances that would not fit within it are refused (failed, \"descriptors\")",
			"hard", rl.Max, "want", want, "err", err, "hint", "run as root with CAP_SYS_RESOURCE, or raise it before (systemd LimitNOFILE=, ulimit -Hn)")
		return
	}
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, os.Args, os.Environ())
	}
	// Still here: run on in this image with the soft limit it had. Go
	// no longer restores the children's soft limit after a Setrlimit, so
	// the instances get this one.
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: rl.Cur, Max: uint64(want)})
	log.Warn("raised the hard descriptor limit but cannot execute gdpm-slave again to use it; the instances get the slave's soft limit", "err", err)
}

// childSoftLimit is the soft RLIMIT_NOFILE a child of this process gets
// (0 if it cannot tell): the one the process started with, which Go
// restores in every child.
func childSoftLimit() uint64 {
	out, err := exec.Command("/bin/sh", "-c", "ulimit -Sn").Output()
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// nrOpen is the kernel's ceiling for RLIMIT_NOFILE (fs.nr_open; 1048576
// unless changed).
func nrOpen() int64 {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 1 << 20
}

// fileLimitUsage is the -max-open-files flag's help.
var fileLimitUsage = fmt.Sprintf("raise the hard RLIMIT_NOFILE to `N` descriptors when it is lower (needs CAP_SYS_RESOURCE; each instance holds a few): 0 for fs.nr_open (%d here), -1 to leave it", nrOpen())
