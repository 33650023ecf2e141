//go:build linux

// Command spawn is the raw baseline of bench/peers.sh: one Go process
// starting n copies of a command, each in its own process group, as gdpm's
// slave does, with nothing around it. It prints the seconds the starts took,
// keeps the processes for -hold so a sampler can see them, then kills and
// reaps them.
//
//	spawn -n 200 -hold 1s sleep 1000
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 200, "how many processes to start")
	hold := flag.Duration("hold", time.Second, "how long to keep them running after the last start")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: spawn [-n N] [-hold D] COMMAND [ARGS...]")
		os.Exit(2)
	}
	cmds := make([]*exec.Cmd, 0, *n)
	start := time.Now()
	for i := 0; i < *n; i++ {
		cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			break
		}
		cmds = append(cmds, cmd)
	}
	took := time.Since(start)
	fmt.Printf("%.4f\n", took.Seconds())
	time.Sleep(*hold)
	for _, cmd := range cmds {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
	if len(cmds) < *n {
		os.Exit(1)
	}
}
