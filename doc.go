// Package gdpm is a distributed process manager whose every durable fact
// lives in etcd.
//
// A [Master] accepts slave registrations on a TCP port, serves the HTTP API
// and, when elected leader through etcd, runs the scheduler that places
// service instances round-robin over the live slaves. A [Slave] registers with
// a master, watches etcd for the assignments carrying its node id and runs,
// restarts and stops real OS processes. A [Client] speaks the HTTP API.
//
// # Embedding
//
// Everything runs in one process as well as across machines:
//
//	etcd, _ := gdpm.StartEmbeddedEtcd(ctx, gdpm.EmbeddedEtcdConfig{Dir: dir})
//	defer etcd.Close()
//	m, _ := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: etcd.Endpoints()})
//	_ = m.Start(ctx)
//	defer m.Close()
//	s, _ := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{m.TCPAddr()}})
//	_ = s.Start(ctx)
//	defer s.Close()
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
// mutual TLS.
//
// # State
//
// The key layout under the configurable prefix (default "/gdpm/") is listed
// in keys.go and in the README. The master keeps no state that etcd does not
// have; any master can restart at any time.
package gdpm
