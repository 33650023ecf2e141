package gdpm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// BenchmarkSchedulerPlacements measures the control plane alone: nodes are
// records in etcd that no slave serves, so nothing forks, and the time is
// what the scheduler needs to place b.N instances (in services of at most
// 10,000) round-robin over them and commit every placement to etcd. The
// env sizes show what a placement costs as the spec grows (issue 10: a
// placement used to copy the spec; it names it now). A run that places
// nothing for 10 s fails as stalled.
func BenchmarkSchedulerPlacements(b *testing.B) {
	for _, tc := range []struct {
		nodes int
		env   int
	}{{10, 0}, {1000, 0}, {10, 1 << 10}, {10, 13000}, {10, 32000}} {
		b.Run(fmt.Sprintf("nodes=%d/env=%d", tc.nodes, tc.env), func(b *testing.B) {
			nodes := tc.nodes
			var env map[string]string
			if tc.env > 0 {
				env = map[string]string{"BLOB": strings.Repeat("x", tc.env)}
			}
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
				if _, err := c.client.CreateService(ctx, gdpm.CreateRequest{Command: "sleep 1", InstanceNum: &n, Env: env}); err != nil {
					b.Fatal(err)
				}
				left -= n
			}
			last, progress := p0, time.Now()
			for {
				p, _, _, _ := m.SchedulerStats()
				if p-p0 >= int64(b.N) {
					break
				}
				if p != last {
					last, progress = p, time.Now()
				} else if time.Since(progress) > 10*time.Second {
					b.Fatalf("stalled: %d of %d placed, none in 10 s", p-p0, b.N)
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
	sizes := []struct{ n, slaves int }{{200, 1}, {200, 4}, {1000, 1}, {1000, 4}}
	if testing.Short() {
		sizes = []struct{ n, slaves int }{{20, 1}, {40, 4}}
	}
	for _, tc := range sizes {
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

// BenchmarkRestart measures the first restart after a crash: from the
// moment a process exits (it writes the time just before its exit) to the
// moment its replacement runs (the replacement writes the time first
// thing). Each iteration crashes restartSamples single-instance services at
// once; the times include a shell and a `date` at both ends.
func BenchmarkRestart(b *testing.B) {
	const restartSamples = 10
	c := newCluster(b, clusterOpts{slaves: 1})
	dir := b.TempDir()
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		var files, ids []string
		for j := 0; j < restartSamples; j++ {
			f := filepath.Join(dir, fmt.Sprintf("r%d-%d", i, j))
			files = append(files, f)
			ids = append(ids, c.create(fmt.Sprintf(
				`sh -c 'echo s $(date +%%s%%N) >>%s; sleep 0.2; echo e $(date +%%s%%N) >>%s; exit 1'`, f, f), 1))
		}
		for _, f := range files {
			var st []int64 // start, exit, start
			waitFor(b, 20*time.Second, "a crash and a restart in "+f, func() (bool, string) {
				st = stamps(f)
				return len(st) >= 3, fmt.Sprint(st)
			})
			samples = append(samples, time.Duration(st[2]-st[1]))
		}
		b.StopTimer()
		for _, id := range ids {
			if err := c.client.DeleteService(ctxT(b), id); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(samples[0].Microseconds())/1000, "min-ms")
}

// stamps reads the nanosecond times written by the restart benchmark's
// command, in order.
func stamps(path string) []int64 {
	data, _ := os.ReadFile(path)
	var ts []int64
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			ts = append(ts, n)
		}
	}
	return ts
}

// BenchmarkFailover measures, per run, the time from kill -9 of a
// gdpm-slave binary running every instance of an m-instance service to all
// m running again on the other (in-process) slave, at the default lease
// TTL of 5 s. Each run has a cluster of its own. In -short mode: 5
// instances and a 1 s lease, so CI exercises the path quickly.
func BenchmarkFailover(b *testing.B) {
	m, ttl := 50, gdpm.DefaultLeaseTTL
	if testing.Short() {
		m, ttl = 5, time.Second
	}
	bin := buildBinary(b, "gdpm-slave")
	var runs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := newCluster(b, clusterOpts{master: func(cfg *gdpm.MasterConfig) { cfg.LeaseTTL = ttl }})
		sp := startBinProc(b, bin, "-master", c.master().TCPAddr(), "-data", b.TempDir(), "-logs-addr", "127.0.0.1:0", "-log-level", "info")
		waitFor(b, 20*time.Second, "gdpm-slave to register", func() (bool, string) {
			return strings.Contains(sp.out.String(), "msg=registered"), ""
		})
		svc := c.create("sleep 1000", m)
		c.waitRunning(svc, m)
		other := c.addSlave().NodeID()
		b.StartTimer()
		begin := time.Now()
		sp.kill9()
		waitFor(b, 4*ttl+20*time.Second, fmt.Sprintf("%d instances running on the other slave", m), func() (bool, string) {
			_, perNode, err := c.running(svc)
			return err == nil && perNode[other] == m, fmt.Sprint(perNode, err)
		})
		took := time.Since(begin)
		b.StopTimer()
		runs = append(runs, took)
		b.Logf("run %d: %d instances running again %v after kill -9 (lease TTL %v)", i+1, m, took.Round(time.Millisecond), ttl)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(runs)
	b.ReportMetric(runs[len(runs)/2].Seconds(), "p50-s")
	b.ReportMetric(runs[len(runs)-1].Seconds(), "max-s")
	b.ReportMetric(ttl.Seconds(), "ttl-s")
}

// BenchmarkFootprint reports the resident memory (VmRSS) of a gdpm-slave
// binary running 1000 `sleep` instances and of the gdpm-master binary that
// scheduled them (the leader, on an etcd of the test process, so its RSS is
// the master's alone), the slave's threads and the time until all run. In
// -short mode: 50 instances. GDPM_FOOTPRINT_INSTANCES sets another count
// (bench/all.sh runs 10000 too); GDPM_FOOTPRINT_DISCARD=1 runs the slave
// with -discard-output; GDPM_FOOTPRINT_IDLE (a duration, "60s")
// also reports the slave's CPU over that long once all run, idle.
func BenchmarkFootprint(b *testing.B) {
	n := testkit.FootprintInstances(1000, 50)
	idle, _ := time.ParseDuration(os.Getenv("GDPM_FOOTPRINT_IDLE"))
	slaveArgs := []string{"-log-level", "warn"}
	if os.Getenv("GDPM_FOOTPRINT_DISCARD") != "" {
		// Output to /dev/null: one descriptor per instance instead of
		// three, so 10,000 fit in a limit of 20,000.
		slaveArgs = append(slaveArgs, "-discard-output")
	}
	masterBin, slaveBin := buildBinary(b, "gdpm-master"), buildBinary(b, "gdpm-slave")
	for i := 0; i < b.N; i++ {
		etcd, err := gdpm.StartEmbeddedEtcd(context.Background(), gdpm.EmbeddedEtcdConfig{Dir: b.TempDir(), UnsafeNoFsync: true})
		if err != nil {
			b.Fatal(err)
		}
		mp := startBinProc(b, masterBin, "-etcd", strings.Join(etcd.Endpoints(), ","),
			"-http", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-log-level", "warn")
		// Stop the binaries before etcd (cleanups run last first).
		b.Cleanup(func() { etcd.Close() })
		var httpAddr, tcpAddr string
		waitFor(b, 20*time.Second, "gdpm-master to listen", func() (bool, string) {
			for _, l := range strings.Split(mp.out.String(), "\n") {
				if _, err := fmt.Sscanf(l, "gdpm-master: API on http://%s registration on %s", &httpAddr, &tcpAddr); err == nil {
					httpAddr = strings.TrimSuffix(httpAddr, ",")
					return true, ""
				}
			}
			return false, mp.out.String()
		})
		sp := startBinProc(b, slaveBin, append([]string{"-master", tcpAddr, "-data", b.TempDir(), "-logs-addr", "127.0.0.1:0"}, slaveArgs...)...)
		cl, err := gdpm.NewClient(gdpm.ClientConfig{Addr: "http://" + httpAddr})
		if err != nil {
			b.Fatal(err)
		}
		waitFor(b, 20*time.Second, "the slave to register", func() (bool, string) {
			nodes, err := cl.Nodes(ctxT(b))
			return err == nil && len(nodes.Ids) == 1, fmt.Sprint(nodes, err)
		})
		created := time.Now()
		id, err := cl.CreateService(ctxT(b), gdpm.CreateRequest{Command: "sleep 1000", InstanceNum: &n})
		if err != nil {
			b.Fatal(err)
		}
		// A GET /service/:id costs the master and etcd time in proportion
		// to n, so a fixed 20 ms poll made the benchmark's own polling grow
		// as n^2 over a launch that takes time in proportion to n (at 3000
		// instances it starved the slave of its lease). Poll every 20 ms
		// plus 20 µs per instance: 40 ms at 1000, 220 ms at 10,000.
		every := 20*time.Millisecond + time.Duration(n)*20*time.Microsecond
		// A slave whose descriptor limit is too low for n refuses the
		// instances that do not fit (failed, "descriptors"): then the
		// numbers are of those that run, and say so.
		deadline := created.Add(max(60*time.Second, time.Duration(n)*20*time.Millisecond))
		running, refused := 0, 0
		for {
			d, err := cl.Service(ctxT(b), id)
			running, refused = d.Running, 0
			for _, in := range d.Instances {
				if in.State == gdpm.StateFailed && strings.Contains(in.Error, "descriptors (RLIMIT_NOFILE)") {
					refused++
				}
			}
			if err == nil && running+refused == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d running, %d refused for descriptors, after %v (%v)", running, n, refused, time.Since(created).Round(time.Second), err)
			}
			time.Sleep(every)
		}
		b.ReportMetric(time.Since(created).Seconds(), "s-to-all-running")
		if refused > 0 {
			b.Logf("the slave's descriptor limit refused %d of %d instances: the numbers are of the %d that run", refused, n, running)
			b.ReportMetric(float64(refused), "refused-fds")
		}
		time.Sleep(500 * time.Millisecond) // let status batches and GC settle
		b.ReportMetric(procStatus(b, sp.cmd.Process.Pid, "VmRSS")/1024, "slave-MB")
		if idle > 0 {
			before := procCPU(b, sp.cmd.Process.Pid)
			time.Sleep(idle)
			b.ReportMetric(100*(procCPU(b, sp.cmd.Process.Pid)-before).Seconds()/idle.Seconds(), "slave-idle-cpu-%")
			b.ReportMetric(procStatus(b, sp.cmd.Process.Pid, "VmRSS")/1024, "slave-MB-after-idle")
		}
		b.ReportMetric(procStatus(b, mp.cmd.Process.Pid, "VmRSS")/1024, "master-MB")
		// Threads show whether anything blocks one per instance (a wait
		// per process did, before the epoll loop).
		b.ReportMetric(procStatus(b, sp.cmd.Process.Pid, "Threads"), "slave-threads")
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", sp.cmd.Process.Pid)); err == nil {
			b.ReportMetric(float64(len(fds)), "slave-fds")
		}
		b.ReportMetric(float64(running), "instances")
		b.StopTimer()
		if err := cl.DeleteService(ctxT(b), id); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "the service's processes to stop", func() (bool, string) {
			d, err := cl.Service(ctxT(b), id)
			return err != nil || len(d.Instances) == 0, ""
		})
		sp.stop()
		mp.stop()
		b.StartTimer()
	}
}

// procCPU is the user and system CPU time pid has used, from
// /proc/pid/stat (fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStatus reads a number from /proc/pid/status: VmRSS in kB, Threads.
func procStatus(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			v, _ := strconv.Atoi(f[1])
			return float64(v)
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
