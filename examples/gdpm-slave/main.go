// Command gdpm-slave runs a gdpm slave: it registers with a master and runs
// the instances the scheduler places on it.
//
// SIGINT or SIGTERM stops the instances gracefully and leaves the cluster
// at once. If the slave is killed instead, its watchdog (a small
// "gdpm-watchdog" shell process) kills every process the instances
// started, and a slave started again with the same -data kills whatever
// is left over before it registers.
//
//	gdpm-slave -master 127.0.0.1:8888 -data /var/lib/gdpm-slave
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/examples/internal/cmdutil"
)

func main() {
	os.Exit(cmdutil.ExitStatus(os.Stderr, "gdpm-slave", run(os.Args[1:])))
}

func run(args []string) error {
	fs := flag.NewFlagSet("gdpm-slave", flag.ContinueOnError)
	masters := fs.String("master", gdpm.DefaultTCPAddr, "master registration `HOST:PORT[,HOST:PORT...]`")
	data := fs.String("data", "", "data `DIR` for the node id and logs (default: a temporary dir)")
	token := fs.String("token", os.Getenv("GDPM_TOKEN"), "cluster `token` (env GDPM_TOKEN)")
	logsAddr := fs.String("logs-addr", "", "`HOST:PORT` to serve instance logs to the masters on, token-protected; an unspecified host is advertised as the address that reaches the master (default \":0\" with a token, \"127.0.0.1:0\" without)")
	logMaxMB := fs.Int64("log-max-size", gdpm.DefaultLogMaxSize>>20, "rotate an instance's stdout or stderr file at this many `MiB`")
	logFiles := fs.Int("log-max-files", gdpm.DefaultLogMaxFiles, "files kept per instance stream, the current one included")
	logKeep := fs.Duration("log-retention", gdpm.DefaultLogRetention, "keep the logs of an instance that no longer runs here this long after their last write (negative: forever)")
	logFlags := cmdutil.AddLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gdpm-slave [flags]\n\nexample: gdpm-slave -master 127.0.0.1:8888 -data ./slave1\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := cmdutil.Parse(fs, args); err != nil {
		return err
	}
	if *logMaxMB < 1 || *logFiles < 1 {
		return cmdutil.Usagef("-log-max-size and -log-max-files must be at least 1")
	}
	log := logFlags.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := gdpm.NewSlave(gdpm.SlaveConfig{
		Masters: strings.Split(*masters, ","),
		DataDir: *data,
		Token:   *token,
		Logger:  log,
		LogAddr: *logsAddr,
		// Instance logs: at most LogMaxFiles x LogMaxSize per stream.
		LogMaxSize:   *logMaxMB << 20,
		LogMaxFiles:  *logFiles,
		LogRetention: *logKeep,
		// This process runs nothing but the slave, so it can adopt and
		// reap what the instances orphan.
		Subreaper: true,
	})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("stopping instances and leaving the cluster")
	return s.Close()
}
