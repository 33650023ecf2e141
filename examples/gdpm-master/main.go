// Command gdpm-master runs a gdpm master: slave registration, the HTTP API
// and, when elected, the scheduler.
//
//	gdpm-master -dev                         # all in one: embedded etcd + master + one slave
//	gdpm-master -embed-etcd /var/lib/gdpm    # embedded etcd kept in a directory
//	gdpm-master -etcd http://etcd1:2379       # an existing etcd cluster
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
	os.Exit(cmdutil.ExitStatus(os.Stderr, "gdpm-master", run(os.Args[1:])))
}

func run(args []string) error {
	fs := flag.NewFlagSet("gdpm-master", flag.ContinueOnError)
	httpAddr := fs.String("http", gdpm.DefaultHTTPAddr, "HTTP API listen `address`")
	tcpAddr := fs.String("tcp", gdpm.DefaultTCPAddr, "slave registration listen `address`")
	etcdURLs := fs.String("etcd", "", "comma-separated `URLs` of an existing etcd cluster")
	embedDir := fs.String("embed-etcd", "", "run an embedded single-node etcd with its data in `DIR` (kept across restarts)")
	etcdListen := fs.String("etcd-listen", "127.0.0.1:2379", "client `HOST:PORT` of the embedded etcd (keep it stable so slaves reconnect)")
	prefix := fs.String("prefix", gdpm.DefaultPrefix, "etcd key `prefix`")
	token := fs.String("token", os.Getenv("GDPM_TOKEN"), "cluster `token` required from clients and slaves (env GDPM_TOKEN)")
	dev := fs.Bool("dev", false, "development cluster: embedded etcd in a temporary dir plus one slave in this process")
	leaseTTL := fs.Duration("lease-ttl", gdpm.DefaultLeaseTTL, "slave liveness lease")
	electionTTL := fs.Duration("election-ttl", gdpm.DefaultElectionTTL, "how long a dead leader holds the scheduler before a standby master takes over")
	corsOrigins := fs.String("cors-origin", "", "comma-separated browser `ORIGINS` (https://app.example.com) allowed to drive the API from their pages; other origins' writes are refused")
	logFlags := cmdutil.AddLogFlags(fs)
	secF := addSecFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gdpm-master [flags]\n\nexample: gdpm-master -dev\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := cmdutil.Parse(fs, args); err != nil {
		return err
	}
	if *etcdURLs != "" && (*embedDir != "" || *dev) {
		return cmdutil.Usagef("-etcd cannot be combined with -embed-etcd or -dev")
	}
	if *etcdURLs == "" && *embedDir == "" && !*dev {
		return cmdutil.Usagef("no etcd: give -etcd URLs, -embed-etcd DIR or -dev")
	}
	embedded := *etcdURLs == ""
	listeners := map[string]string{"http": *httpAddr, "tcp": *tcpAddr}
	if embedded && !(*dev && *embedDir == "") {
		listeners["etcd-listen"] = *etcdListen
	}
	if err := checkListen(*token, listeners); err != nil {
		return err
	}
	log := logFlags.Logger(os.Stderr)
	var sec *security
	switch {
	case *token != "" && *secF.tls:
		var err error
		if sec, err = secF.setup(*embedDir, embedded, os.Stderr); err != nil {
			return err
		}
	case *token != "":
		fmt.Fprintln(os.Stderr, "gdpm-master: WARNING: -tls=false: the API, the registration (which carries the token), the logs and etcd are plain text. "+
			"Anyone on the network can read the token and take over every slave. Use this only on a network you fully trust.")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var endpoints []string
	if *etcdURLs != "" {
		for _, u := range strings.Split(*etcdURLs, ",") {
			if u = strings.TrimSpace(u); u != "" {
				endpoints = append(endpoints, u)
			}
		}
	} else {
		cfg := gdpm.EmbeddedEtcdConfig{Dir: *embedDir, ClientAddr: *etcdListen, Prefix: *prefix}
		if sec != nil {
			cfg.CA, cfg.Hosts = sec.etcdCA, sec.master.Advertise
		}
		if *dev && *embedDir == "" {
			cfg.ClientAddr = "127.0.0.1:0"
		}
		etcd, err := gdpm.StartEmbeddedEtcd(ctx, cfg)
		if err != nil {
			return err
		}
		defer etcd.Close()
		endpoints = etcd.Endpoints()
		log.Info("embedded etcd ready", "endpoints", endpoints, "dir", cfg.Dir)
	}

	mcfg := gdpm.MasterConfig{
		Endpoints: endpoints, Prefix: *prefix, HTTPAddr: *httpAddr, TCPAddr: *tcpAddr,
		Token: *token, LeaseTTL: *leaseTTL, ElectionTTL: *electionTTL, Logger: log,
		CORSOrigins: strings.Split(*corsOrigins, ","),
	}
	if sec != nil {
		mcfg.TLS, mcfg.EtcdTLS = sec.master, sec.etcdTLS
	}
	m, err := gdpm.NewMaster(mcfg)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Close()
	// Where it serves is shown whatever the log level: scripts wait for it.
	scheme := "http"
	if sec != nil {
		scheme = "https"
	}
	if logFlags.Format == cmdutil.FormatJSON {
		args := []any{"api", scheme + "://" + m.HTTPAddr(), "registration", m.TCPAddr(), "ui", scheme + "://" + m.HTTPAddr() + "/ui/"}
		if h := m.CAHash(); h != "" {
			args = append(args, "ca", h)
		}
		cmdutil.Notice(log, "serving", args...)
	} else {
		fmt.Fprintf(os.Stderr, "gdpm-master: API on %s://%s, registration on %s\n", scheme, m.HTTPAddr(), m.TCPAddr())
		fmt.Fprintf(os.Stderr, "gdpm-master: web interface on %s://%s/ui/\n", scheme, m.HTTPAddr())
	}
	if h := m.CAHash(); h != "" {
		// The pin and the join line, whatever the log level: the
		// operator pastes them.
		join := fmt.Sprintf("gdpm-slave -master %s -token $GDPM_TOKEN -ca-hash %s", joinHost(m.TCPAddr(), sec.master.Advertise), h)
		client := fmt.Sprintf("gdpm-client -addr https://%s -ca-hash %s", m.HTTPAddr(), h)
		if logFlags.Format == cmdutil.FormatJSON {
			cmdutil.Notice(log, "join", "ca", h, "join", join, "client", client)
		} else {
			fmt.Fprintf(os.Stderr, "gdpm-master: CA %s\n", h)
			fmt.Fprintf(os.Stderr, "gdpm-master: join with: %s\n", join)
			fmt.Fprintf(os.Stderr, "gdpm-master: client: %s (token in GDPM_TOKEN)\n", client)
		}
	}

	if *dev {
		s, err := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{m.TCPAddr()}, Token: *token, CAHash: m.CAHash(), LogAddr: "127.0.0.1:0", Logger: log.With("component", "slave")})
		if err != nil {
			return err
		}
		if err := s.Start(ctx); err != nil {
			return err
		}
		defer s.Close()
	}
	select {
	case <-ctx.Done():
	case <-m.Done():
		// A listener failed: exit non-zero, so a supervisor restarts us.
		return m.Err()
	}
	log.Info("shutting down")
	return nil
}
