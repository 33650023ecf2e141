package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// startSecureCluster is startCluster with TLS everywhere: the cluster CA,
// an etcd that requires client certificates, a slave joined by the CA's
// hash. It returns the https API URL and the hash.
func startSecureCluster(t *testing.T, token string) (string, string) {
	t.Helper()
	ctx := context.Background()
	ca, err := gdpm.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := gdpm.StartEmbeddedEtcd(ctx, gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true, CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	etcdTLS, err := ca.EtcdClientTLS("cli test master")
	if err != nil {
		t.Fatal(err)
	}
	m, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: etcd.Endpoints(), HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Token: token,
		TLS: &gdpm.MasterTLS{CA: ca}, EtcdTLS: etcdTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, err := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{m.TCPAddr()}, Token: token, CAHash: m.CAHash(), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return "https://" + m.HTTPAddr(), m.CAHash()
}

// The CLI against a secured master: create, logs and delete with the CA
// hash from GDPM_CA_HASH; a wrong hash fails with a hint, before the token
// is sent.
func TestCLIAgainstASecuredCluster(t *testing.T) {
	addr, hash := startSecureCluster(t, "tok")
	vars := map[string]string{"GDPM_ADDR": strings.TrimPrefix(addr, "https://"), "GDPM_TOKEN": "tok", "GDPM_CA_HASH": hash}
	cli := newTestCLI(t, vars).run
	code, out, errs := cli("create", "--", "sh", "-c", "echo secured hello; exec sleep 100")
	if code != 0 {
		t.Fatalf("create: exit %d %s%s", code, out, errs)
	}
	id := strings.TrimSpace(out)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, out, errs = cli("logs", id)
		if strings.Contains(out, "| secured hello") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs never showed the line: %q %q", out, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, out, errs := cli("delete", id); code != 0 {
		t.Fatalf("delete: exit %d %s%s", code, out, errs)
	}
	vars["GDPM_CA_HASH"] = "sha256:" + strings.Repeat("0", 64)
	code, _, errs = cli("get", "services")
	if code != exitFailed || !strings.Contains(errs, "untrusted peer") || !strings.Contains(errs, "-ca-hash") {
		t.Fatalf("a wrong hash: exit %d, %q", code, errs)
	}
}
