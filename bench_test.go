package gdpm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"syscall"
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

// BenchmarkLaunch measures POST /service/ with InstanceNum=n until all n
// processes run (as the slaves report them), next to starting n processes
// straight from Go in the same run: the ratio is gdpm's overhead.
func BenchmarkLaunch(b *testing.B) {
	for _, tc := range []struct{ n, slaves int }{{200, 1}, {1000, 4}} {
		b.Run(fmt.Sprintf("n=%d/slaves=%d", tc.n, tc.slaves), func(b *testing.B) {
			c := newCluster(b, clusterOpts{slaves: tc.slaves})
			var gdpmTotal, rawTotal time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				id := c.create("sleep 1000", tc.n)
				var d gdpm.ServiceDetail
				for d.Running != tc.n {
					time.Sleep(2 * time.Millisecond)
					var err error
					if d, err = c.client.Service(ctxT(b), id); err != nil {
						b.Fatal(err)
					}
				}
				gdpmTotal += time.Since(start)
				b.StopTimer()
				var pids []int
				for _, in := range d.Instances {
					pids = append(pids, in.PID)
				}
				if err := c.client.DeleteService(ctxT(b), id); err != nil {
					b.Fatal(err)
				}
				waitDead(b, pids)
				rawTotal += rawSpawn(b, tc.n)
				b.StartTimer()
			}
			b.ReportMetric(gdpmTotal.Seconds()/float64(b.N), "gdpm-s")
			b.ReportMetric(rawTotal.Seconds()/float64(b.N), "raw-s")
			b.ReportMetric(float64(gdpmTotal)/float64(rawTotal), "ratio")
		})
	}
}

// rawSpawn starts n `sleep 1000` processes, each in its own process group,
// returns how long the starts took, then kills and reaps them.
func rawSpawn(b *testing.B, n int) time.Duration {
	cmds := make([]*exec.Cmd, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		cmd := exec.Command("sleep", "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	took := time.Since(start)
	for _, cmd := range cmds {
		cmd.Process.Kill()
		cmd.Wait()
	}
	return took
}
