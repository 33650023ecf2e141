// Package gdpm is a distributed process manager whose every durable fact
// lives in etcd.
//
// A [Master] accepts slave registrations on a TCP port, serves the HTTP API
// and, when elected leader through etcd, runs the scheduler that places
// service instances round-robin over the live slaves. A [Slave] registers with
// a master, watches etcd for the assignments carrying its node id and runs,
// restarts and stops real OS processes. A [Client] speaks the HTTP API.
//
// # Platforms
//
// Masters, clients and the embedded etcd run wherever Go does. A slave
// needs Linux: it supervises processes with process groups, pidfds (Linux
// 5.3; older kernels cost a thread per instance), epoll and /proc, all in
// internal/runner and internal/proc. Elsewhere the package builds and [NewSlave] fails with
// [ErrUnsupportedOS].
//
// # Descriptors
//
// A slave's instances hold descriptors of the process that embeds it for
// as long as they run (their two output pipes and a pidfd), so the
// process's RLIMIT_NOFILE bounds the instances one slave runs: about 6,600
// at a limit of 20,000; with SlaveConfig.DiscardOutput an instance holds
// its pidfd alone, and 10,000 fit. Go raises a program's soft limit to its hard limit at
// start; the hard limit is for the embedder to set before the program
// starts (systemd LimitNOFILE=, ulimit -Hn, or as gdpm-slave does: raise
// it with CAP_SYS_RESOURCE and execute the program again, so that Go still
// gives every child the soft limit the program started with; a
// syscall.Setrlimit in the running program stops that, and the children
// then inherit whatever the program set). The slave keeps 128 descriptors
// for itself (etcd, registration, its log server): a new instance that
// would cut into them waits while other starts are under way, and is
// otherwise not started but reported failed, naming the limit, and tried
// again while it stays assigned there.
//
// # Embedding
//
// Everything runs in one process as well as across machines. Port 0 takes
// any free port (read it back with HTTPAddr and TCPAddr), so this runs
// beside a gdpm-master on the default ports; [ListenerOff] turns a
// listener off, to mount [Master.Handler] in a server of one's own:
//
//	etcd, _ := gdpm.StartEmbeddedEtcd(ctx, gdpm.EmbeddedEtcdConfig{Dir: dir})
//	defer etcd.Close()
//	m, _ := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: etcd.Endpoints(),
//		HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"})
//	_ = m.Start(ctx)
//	defer m.Close()
//	_ = m.WaitReady(ctx)
//	s, _ := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{m.TCPAddr()}})
//	_ = s.Start(ctx)
//	defer s.Close()
//	_ = s.WaitReady(ctx)
//	c, _ := gdpm.NewClient(gdpm.ClientConfig{Addr: m.HTTPAddr()})
//	id, _ := c.CreateService(ctx, gdpm.CreateRequest{Command: "sleep 60", InstanceNum: new(2)})
//	_, _ = c.WaitRunning(ctx, id, 2)
//
// # Lifecycle
//
// Master and Slave follow one contract (an EmbeddedEtcd is started by
// StartEmbeddedEtcd and closed like them):
//
//   - New* checks the config and fails with [ErrInvalidConfig] for one that
//     cannot work; it starts nothing.
//   - Start(ctx) binds the listeners and starts the background work, then
//     returns: ctx bounds only what Start itself waits for (a secured
//     master settling the cluster CA in etcd). Cancelling it later stops
//     nothing; its values are kept. Start is idempotent, and fails with
//     [ErrClosed] after Close.
//   - WaitReady(ctx) waits until the part can work: a master until etcd
//     has answered it, a slave until it has registered and read its
//     assignments. It returns early with the cause when waiting cannot
//     help (a refused token or CA, a closed or failed master), and wraps
//     the last error seen into ctx's.
//   - A master's Done closes when it stops serving for good (Close, or a
//     listener failing under it) and Err says why.
//   - Close stops everything and waits for it: no goroutine and no child
//     process outlives it. It is idempotent and safe on nil; a Slave's
//     Close stops its instances gracefully first.
//
// Every wait takes a context; logs go to the slog.Logger of the config
// (silent by default); errors wrap the sentinels of errors.go, which
// [APIError] maps to HTTP statuses through one table.
//
// # Where things are
//
// The files say their side: master.go, api*.go, readmodel.go, events.go,
// metrics.go and masterlogs.go serve; scheduler.go and sched*.go place;
// slave*.go run instances, on internal/runner and internal/proc; apitypes.go, keys.go and
// limits.go are the wire, the etcd layout and every default. The README's
// architecture section has the whole map.
//
// # Security
//
// A cluster that leaves loopback needs a token and TLS. One cluster CA
// ([NewCA], [LoadOrCreateCAFiles]) signs every certificate; it is kept in
// etcd, so every master issues from it:
//
//	ca, _, _ := gdpm.LoadOrCreateCAFiles(filepath.Join(dir, "pki"))
//	etcd, _ := gdpm.StartEmbeddedEtcd(ctx, gdpm.EmbeddedEtcdConfig{Dir: dir, CA: ca})
//	etcdTLS, _ := ca.EtcdClientTLS("master")
//	m, _ := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: etcd.Endpoints(), Token: token,
//		TLS: &gdpm.MasterTLS{CA: ca}, EtcdTLS: etcdTLS})
//	s, _ := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{m.TCPAddr()}, Token: token,
//		CAHash: ca.Hash()})
//	c, _ := gdpm.NewClient(gdpm.ClientConfig{Addr: "https://" + m.HTTPAddr(), Token: token,
//		CAHash: ca.Hash()})
//
// The slave pins the CA by hash, sends a CSR with the token and gets its
// certificate for etcd and its log server; the master fetches logs over
// mutual TLS. The embedded etcd with a CA turns etcd's auth on: a master's
// certificate from [CA.EtcdClientTLS] is etcd's root user, a slave's
// reaches only its own keys (etcdauth.go).
//
// # State
//
// The key layout under the configurable prefix (default "/gdpm/") is listed
// in keys.go and in the README. The master keeps no state that etcd does not
// have; any master can restart at any time.
package gdpm
