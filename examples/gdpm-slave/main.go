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
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/capy-pl/gdpm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gdpm-slave:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("gdpm-slave", flag.ContinueOnError)
	masters := fs.String("master", gdpm.DefaultTCPAddr, "master registration `HOST:PORT[,HOST:PORT...]`")
	data := fs.String("data", "", "data `DIR` for the node id and logs (default: a temporary dir)")
	token := fs.String("token", os.Getenv("GDPM_TOKEN"), "cluster `token` (env GDPM_TOKEN)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gdpm-slave [flags]\n\nexample: gdpm-slave -master 127.0.0.1:8888 -data ./slave1\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := gdpm.NewSlave(gdpm.SlaveConfig{
		Masters: strings.Split(*masters, ","),
		DataDir: *data,
		Token:   *token,
		Logger:  log,
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
