package gdpm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm"
)

// The slave samples each instance's process group: a busy loop uses about
// one core, a sleep nothing, a program that allocates 200 MB has more than
// 150 MB resident. The node list says the host's name, cores and memory.
func TestUsageOfInstancesAndNodes(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1, slave: func(cfg *gdpm.SlaveConfig) {
		cfg.UsageInterval = 500 * time.Millisecond
		cfg.Hostname = "usage-host"
	}})
	prog := gdpm.ProgramForTests()
	spin := c.create(prog+" spin", 1)
	idle := c.create(prog+" sleep", 1)
	big := c.create(prog+" alloc 200", 1)

	usage := func(id string) (gdpm.ServiceSummary, gdpm.InstanceInfo) {
		d, err := c.client.Service(ctxT(t), id)
		if err != nil || len(d.Instances) != 1 {
			return gdpm.ServiceSummary{}, gdpm.InstanceInfo{}
		}
		list, _ := c.client.Services(ctxT(t))
		for _, s := range list {
			if s.ID == id {
				return s, d.Instances[0]
			}
		}
		return gdpm.ServiceSummary{}, d.Instances[0]
	}
	// CPU depends on the machine's load: the test waits for a sample near
	// one core rather than asserting the first one.
	waitFor(t, 30*time.Second, "a busy loop near 100% of a core", func() (bool, string) {
		s, in := usage(spin)
		return in.CPU >= 60 && in.CPU <= 115 && s.CPU == in.CPU, fmt.Sprintf("instance %.1f%%, service %.1f%%", in.CPU, s.CPU)
	})
	waitFor(t, 30*time.Second, "sleep near 0% and measured", func() (bool, string) {
		_, in := usage(idle)
		return in.RSS > 0 && in.CPU < 5, fmt.Sprintf("%.1f%%, %d bytes", in.CPU, in.RSS)
	})
	waitFor(t, 30*time.Second, "200 MB allocated: over 150 MB resident", func() (bool, string) {
		s, in := usage(big)
		return in.RSS > 150<<20 && s.RSS == in.RSS, fmt.Sprintf("instance %d bytes, service %d", in.RSS, s.RSS)
	})
	_, a := usage(spin)
	_, b := usage(big)
	t.Logf("busy loop %.1f%% of a core; 200 MB program %d MiB resident", a.CPU, b.RSS>>20)

	waitFor(t, 10*time.Second, "the node's usage", func() (bool, string) {
		l, err := c.client.Nodes(ctxT(t))
		if err != nil || len(l.Ids) != 1 || len(l.Hostnames) != 1 {
			return false, fmt.Sprintf("%+v %v", l, err)
		}
		return l.Hostnames[0] == "usage-host" && l.Instances[0] == 3 && l.Cores[0] > 0 && l.MemTotal[0] > 0 && l.RSS[0] > 150<<20 && l.CPU[0] > 0,
			fmt.Sprintf("%+v", l)
	})
	// In etcd: the node's record holds the host's figures and the
	// totals, and each service's instance is in a shard of its own,
	// usage/<node>/<svc>/0.
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	node := c.kit.Slaves[0].NodeID()
	resp, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"usage/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, kv := range resp.Kvs {
		keys[strings.TrimPrefix(string(kv.Key), gdpm.DefaultPrefix+"usage/")] = string(kv.Value)
	}
	for _, want := range []string{node, node + "/" + spin + "/0", node + "/" + idle + "/0", node + "/" + big + "/0"} {
		if _, ok := keys[want]; !ok {
			t.Errorf("no usage/%s in etcd: %v", want, keys)
		}
	}
	if len(keys) != 4 || strings.Contains(keys[node], `"Instances"`) {
		t.Errorf("usage in etcd: %v", keys)
	}
	// And /metrics has them per service, instance and node.
	code, _, body := c.do("GET", "/metrics", "", "")
	for _, want := range []string{
		fmt.Sprintf(`gdpm_service_status{name="",service="%s",status="running"} 1`, spin),
		fmt.Sprintf(`gdpm_service_cpu_percent{name="",service="%s"}`, spin),
		`gdpm_instance_rss_bytes{instance=`,
		`gdpm_node_cores{host="usage-host",node=`,
		`gdpm_node_memory_bytes{host="usage-host",kind="total",node=`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics: %d, no %s", code, want)
		}
	}
}

// An instance's figures come from the node it is placed on: a usage shard
// of another node that names it (a node that ran it before, or a slave
// writing figures for instances it does not run) is not shown.
func TestUsageOnlyFromTheInstancesNode(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1, slave: func(cfg *gdpm.SlaveConfig) { cfg.UsageInterval = 500 * time.Millisecond }})
	id := c.create(gdpm.ProgramForTests()+" sleep", 1)
	pid := c.waitRunning(id, 1)[0]
	var inst gdpm.InstanceInfo
	waitFor(t, 20*time.Second, "the instance's own usage", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), id)
		if err != nil || len(d.Instances) != 1 {
			return false, fmt.Sprint(d, err)
		}
		inst = d.Instances[0]
		return inst.RSS > 0, fmt.Sprintf("%+v", inst)
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	forged := fmt.Sprintf(`[{"Instance":%q,"PID":%d,"CPU":999,"RSS":999999999}]`, inst.ID, pid)
	if _, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"usage/another-node/"+id+"/0", forged); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"usage/another-node", `{"Node":"another-node"}`); err != nil {
		t.Fatal(err)
	}
	// Both records are in etcd now; before, which one a read showed was
	// up to map order.
	for range 20 {
		d, err := c.client.Service(ctxT(t), id)
		if err != nil || len(d.Instances) != 1 {
			t.Fatalf("service: %+v %v", d, err)
		}
		if in := d.Instances[0]; in.CPU == 999 || in.RSS == 999999999 {
			t.Fatalf("another node's figures shown for the instance: %+v", in)
		}
	}
	code, _, body := c.do("GET", "/metrics", "", "")
	if code != 200 || strings.Contains(body, "999999999") || strings.Contains(body, "9.99e+08") {
		t.Errorf("/metrics shows another node's figures for the instance (%d)", code)
	}
}
