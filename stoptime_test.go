package gdpm_test

import (
	"context"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// TestEmbeddedEtcdStopTime measures how long a master with an embedded
// etcd takes to stop while slaves hold watches on it, in both orders an
// embedding program may close them (issue 10, 8). It prints the times and
// asserts nothing about them: no wall-clock assertions in tests.
func TestEmbeddedEtcdStopTime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	for _, order := range []string{"MasterThenEtcd", "EtcdThenMaster"} {
		t.Run(order, func(t *testing.T) {
			etcd, err := gdpm.StartEmbeddedEtcd(context.Background(), gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { etcd.Close() })
			m, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: etcd.Endpoints(), HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", LeaseTTL: 2 * time.Second, ElectionTTL: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			var slaves []*gdpm.Slave
			for range 2 {
				s, err := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{m.TCPAddr()}, DataDir: t.TempDir(), LogAddr: "127.0.0.1:0", RequestTimeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				if err := s.WaitReady(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				slaves = append(slaves, s)
			}
			waitFor(t, 10*time.Second, "the master to lead", func() (bool, string) { return m.IsLeader(), "" })
			// A GET /events stream is open too, as the web interface holds.
			c, err := gdpm.NewClient(gdpm.ClientConfig{Addr: "http://" + m.HTTPAddr()})
			if err != nil {
				t.Fatal(err)
			}
			ectx, ecancel := context.WithCancel(context.Background())
			defer ecancel()
			evs, err := c.Events(ectx, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer evs.Close()

			first, second := func() { m.Close() }, func() { etcd.Close() }
			if order == "EtcdThenMaster" {
				first, second = second, first
			}
			begin := time.Now()
			first()
			mid := time.Since(begin)
			second()
			total := time.Since(begin)
			t.Logf("%s with 2 slaves and an event stream attached: first close %v, both %v",
				order, mid.Round(time.Millisecond), total.Round(time.Millisecond))
		})
	}
}
