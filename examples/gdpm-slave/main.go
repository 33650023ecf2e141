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
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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
	caHash := fs.String("ca-hash", os.Getenv("GDPM_CA_HASH"), "pin the cluster CA: `sha256:HEX` as the master prints it (env GDPM_CA_HASH)")
	tlsCA := fs.String("tls-ca", os.Getenv("GDPM_TLS_CA"), "trust the masters whose certificate chains to this CA `FILE` instead of a hash (env GDPM_TLS_CA)")
	tlsCert := fs.String("tls-cert", "", "this slave's own certificate `FILE` (bring your own PKI; no CSR is sent)")
	tlsKey := fs.String("tls-key", "", "the key `FILE` of -tls-cert")
	useTLS := fs.Bool("tls", true, "with a token, join over TLS (needs -ca-hash or -tls-ca); -tls=false only for a master started with -tls=false")
	maxFiles := fs.Int64("max-open-files", 0, fileLimitUsage)
	discard := fs.Bool("discard-output", false, "send the instances' stdout and stderr to /dev/null instead of capturing them (no logs from this slave; one descriptor per instance instead of three)")
	logFlags := cmdutil.AddLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gdpm-slave [flags]\n\nexample: gdpm-slave -master 10.0.0.1:8888 -token $GDPM_TOKEN -ca-hash sha256:...\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := cmdutil.Parse(fs, args); err != nil {
		return err
	}
	if *logMaxMB < 1 || *logFiles < 1 {
		return cmdutil.Usagef("-log-max-size and -log-max-files must be at least 1")
	}
	cfg := gdpm.SlaveConfig{CAHash: *caHash}
	switch {
	case !*useTLS:
		if *token != "" {
			fmt.Fprintln(os.Stderr, "gdpm-slave: WARNING: -tls=false: the token, the logs and etcd travel in plain text")
		}
		cfg.CAHash = ""
	case *caHash == "" && *tlsCA == "":
		if *token != "" {
			return cmdutil.Usagef("with a token the master serves TLS: give -ca-hash sha256:... as the master printed it (or -tls-ca FILE)")
		}
	default:
		if *caHash != "" {
			if _, err := gdpm.ParseCAHash(*caHash); err != nil {
				return cmdutil.Usagef("-ca-hash: want sha256: and 64 hex digits, as the master prints it")
			}
		}
		if *tlsCA != "" {
			pool, err := gdpm.LoadCertPool(*tlsCA)
			if err != nil {
				return err
			}
			cfg.RootCAs = pool
		}
		if (*tlsCert == "") != (*tlsKey == "") {
			return cmdutil.Usagef("-tls-cert and -tls-key go together")
		}
		if *tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
			if err != nil {
				return err
			}
			cfg.Cert = &cert
		}
	}
	log := logFlags.Logger(os.Stderr)
	if *maxFiles < -1 {
		return cmdutil.Usagef("-max-open-files must be -1, 0 or a number of descriptors")
	}
	raiseFileLimit(*maxFiles, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg.Masters = strings.Split(*masters, ",")
	cfg.DataDir = *data
	cfg.Token = *token
	cfg.Logger = log
	cfg.LogAddr = *logsAddr
	// Instance logs: at most LogMaxFiles x LogMaxSize per stream.
	cfg.LogMaxSize, cfg.LogMaxFiles, cfg.LogRetention = *logMaxMB<<20, *logFiles, *logKeep
	cfg.DiscardOutput = *discard
	// This process runs nothing but the slave, so it can adopt and reap
	// what the instances orphan.
	cfg.Subreaper = true
	s, err := gdpm.NewSlave(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	// A wrong pin or token will not fix itself: say so and exit 1 instead
	// of retrying forever (WaitReady returns at once for those). A master
	// that is merely not up yet is waited for.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.WaitReady(wctx)
	cancel()
	if errors.Is(err, gdpm.ErrUntrusted) || errors.Is(err, gdpm.ErrUnauthorized) {
		s.Close()
		return fmt.Errorf("cannot join: %w", err)
	}
	<-ctx.Done()
	log.Info("stopping instances and leaving the cluster")
	return s.Close()
}
