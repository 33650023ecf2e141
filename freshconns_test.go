package gdpm_test

import (
	"net"
	"testing"
)

// A connection that never sends a request (Go's HTTP client parks such
// spares after a burst) must not hold up Master.Close: http.Server's
// Shutdown waits 5 s for those, which ran out the master's shutdown
// timeout and failed TestConcurrentScalesAllLandWithout503 under load.
func TestMasterCloseDoesNotWaitForSilentConnections(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	conns := make([]net.Conn, 3)
	for i := range conns {
		conn, err := net.Dial("tcp", c.master().HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[i] = conn
	}
	// A request on another connection makes sure the server has
	// accepted the silent ones before the close.
	if _, err := c.client.Services(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.master().Close(); err != nil {
		t.Fatalf("master close with silent connections open: %v", err)
	}
	buf := make([]byte, 1)
	for _, conn := range conns {
		if n, err := conn.Read(buf); err == nil {
			t.Errorf("a silent connection is still open after the close (read %d bytes)", n)
		}
	}
}
