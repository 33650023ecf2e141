package gdpm_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// An embedding program turns the built-in listeners off and mounts the
// API in a server of its own.
func TestMasterListenersOff(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	m, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: c.eps, HTTPAddr: gdpm.ListenerOff, TCPAddr: gdpm.ListenerOff})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if m.HTTPAddr() != "" || m.TCPAddr() != "" {
		t.Fatalf("listeners off, but HTTPAddr %q, TCPAddr %q", m.HTTPAddr(), m.TCPAddr())
	}
	if err := m.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/service")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /service on the mounted handler: %s", resp.Status)
	}
}

func TestMasterWaitReadyDoneErr(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	m := c.master()
	if err := m.WaitReady(ctxT(t)); err != nil {
		t.Fatalf("WaitReady with etcd up: %v", err)
	}
	select {
	case <-m.Done():
		t.Fatal("Done closed while the master runs")
	default:
	}
	if err := m.Err(); err != nil {
		t.Fatalf("Err while running: %v", err)
	}

	// No etcd behind the endpoint: WaitReady gives up with ctx, and says
	// why.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	lone, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: []string{dead}, HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := lone.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
	defer cancel()
	err = lone.WaitReady(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "etcd") {
		t.Errorf("WaitReady without etcd: %v; want the deadline and the etcd error", err)
	}
	if err := lone.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lone.Done():
	default:
		t.Fatal("Done open after Close")
	}
	if err := lone.Err(); !errors.Is(err, gdpm.ErrClosed) {
		t.Errorf("Err after Close: %v, want ErrClosed", err)
	}
	if err := lone.WaitReady(ctxT(t)); !errors.Is(err, gdpm.ErrClosed) {
		t.Errorf("WaitReady after Close: %v, want ErrClosed", err)
	}
}
