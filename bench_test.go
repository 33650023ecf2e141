package gdpm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkSchedulerPlacements measures the control plane alone: nodes are
// records in etcd that no slave serves, so nothing forks, and the time is
// what the scheduler needs to place b.N instances (in services of at most
// 10,000) round-robin over them and commit every placement to etcd.
func BenchmarkSchedulerPlacements(b *testing.B) {
	for _, nodes := range []int{10, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			c := newCluster(b, clusterOpts{master: func(cfg *gdpm.MasterConfig) { cfg.MaxInstances = 10000 }})
			cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer cli.Close()
			ctx := context.Background()
			lease, err := cli.Grant(ctx, 600)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < nodes; i++ {
				n := gdpm.Node{ID: uuid.NewString(), Status: gdpm.NodeOnline, RegisteredAt: time.Now()}
				v, _ := json.Marshal(n)
				if _, err := cli.Put(ctx, gdpm.DefaultPrefix+"nodes/"+n.ID, string(v), clientv3.WithLease(lease.ID)); err != nil {
					b.Fatal(err)
				}
			}
			m := c.master()
			p0, _, t0, bytes0 := m.SchedulerStats()
			b.ResetTimer()
			for left := b.N; left > 0; {
				n := min(left, 10000)
				c.create("sleep 1", n)
				left -= n
			}
			for {
				p, _, _, _ := m.SchedulerStats()
				if p-p0 >= int64(b.N) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			p, _, txns, bytes := m.SchedulerStats()
			b.ReportMetric(float64(p-p0)/b.Elapsed().Seconds(), "placements/s")
			b.ReportMetric(float64(bytes-bytes0)/float64(p-p0), "bytes/placement")
			b.ReportMetric(float64(p-p0)/float64(txns-t0), "placements/txn")
		})
	}
}
