package gdpm

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// A listener that dies under a running master closes Done, and Err says
// which; Close still works and keeps the failure.
func TestMasterListenerFailureClosesDone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	etcd, err := StartEmbeddedEtcd(ctx, EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	m, err := NewMaster(MasterConfig{Endpoints: etcd.Endpoints(), HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.httpLn.Close() // as if the socket went away
	select {
	case <-m.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after the API listener failed")
	}
	if err := m.Err(); err == nil || errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Err after a listener failure: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Err(); errors.Is(err, ErrClosed) {
		t.Fatalf("Close replaced the failure: %v", err)
	}
}
