package gdpm

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The usage and status gauges of /metrics (issue 12): per service, per
// instance and per node, from the same reads as the cluster gauges.
var (
	descServiceStatus = prometheus.NewDesc("gdpm_service_status",
		"1 for each service's status word (running, degraded, crashlooping, failed, pending, stopped, updating, halted).", []string{"service", "name", "status"}, nil)
	descServiceCPU = prometheus.NewDesc("gdpm_service_cpu_percent",
		"CPU use of a service's instances, in percent of one core, as their slaves last sampled it.", []string{"service", "name"}, nil)
	descServiceRSS = prometheus.NewDesc("gdpm_service_rss_bytes",
		"Resident memory of a service's instances' process groups.", []string{"service", "name"}, nil)
	descServiceRestarts = prometheus.NewDesc("gdpm_service_restarts",
		"Sum of the restart counts of a service's instances.", []string{"service", "name"}, nil)
	descInstanceCPU = prometheus.NewDesc("gdpm_instance_cpu_percent",
		"CPU use of an instance's process group, in percent of one core.", []string{"service", "instance"}, nil)
	descInstanceRSS = prometheus.NewDesc("gdpm_instance_rss_bytes",
		"Resident memory of an instance's process group.", []string{"service", "instance"}, nil)
	descNodeCPU = prometheus.NewDesc("gdpm_node_cpu_percent",
		"CPU use of a node's instances, in percent of one core.", []string{"node", "host"}, nil)
	descNodeRSS = prometheus.NewDesc("gdpm_node_rss_bytes",
		"Resident memory of a node's instances.", []string{"node", "host"}, nil)
	descNodeCores = prometheus.NewDesc("gdpm_node_cores",
		"CPUs of a node's host.", []string{"node", "host"}, nil)
	descNodeMem = prometheus.NewDesc("gdpm_node_memory_bytes",
		"Memory of a node's host: total, and available as /proc/meminfo says.", []string{"node", "host", "kind"}, nil)
	descNodeLoad = prometheus.NewDesc("gdpm_node_load1",
		"One-minute load average of a node's host.", []string{"node", "host"}, nil)

	usageDescs = []*prometheus.Desc{descServiceStatus, descServiceCPU, descServiceRSS, descServiceRestarts,
		descInstanceCPU, descInstanceRSS, descNodeCPU, descNodeRSS, descNodeCores, descNodeMem, descNodeLoad}
)

// usageCounts is what the usage gauges report.
type usageCounts struct {
	services []serviceUsage
	insts    map[string]InstanceInfo // svc/inst, those with a sample
	nodes    map[string]NodeUsage
}

type serviceUsage struct {
	id, name string
	status   ServiceStatus
	health   ServiceHealth
}

// readUsageCounts derives every service's status and usage from a table
// read at one revision.
func readUsageCounts(t instanceTable, services map[string]Service, nodes map[string]NodeUsage) usageCounts {
	u := usageCounts{insts: map[string]InstanceInfo{}, nodes: nodes}
	now := time.Now()
	for _, s := range services {
		ro := t.rolloutState(s, rolloutHalt{})
		st, h := t.serviceStatus(s, ro.Status, now)
		u.services = append(u.services, serviceUsage{id: s.ID, name: s.Name, status: st, health: h})
		for inst := range t.where[s.ID] {
			if in := t.info(s.ID, inst); in.PID > 0 && (in.CPU > 0 || in.RSS > 0) {
				u.insts[s.ID+"/"+inst] = in
			}
		}
	}
	return u
}

func (u usageCounts) collect(gauge func(d *prometheus.Desc, v float64, labels ...string)) {
	for _, s := range u.services {
		gauge(descServiceStatus, 1, s.id, s.name, string(s.status))
		gauge(descServiceCPU, s.health.CPU, s.id, s.name)
		gauge(descServiceRSS, float64(s.health.RSS), s.id, s.name)
		gauge(descServiceRestarts, float64(s.health.Restarts), s.id, s.name)
	}
	for key, in := range u.insts {
		svc := key[:len(key)-len(in.ID)-1]
		gauge(descInstanceCPU, in.CPU, svc, in.ID)
		gauge(descInstanceRSS, float64(in.RSS), svc, in.ID)
	}
	for id, n := range u.nodes {
		gauge(descNodeCPU, n.CPU, id, n.Hostname)
		gauge(descNodeRSS, float64(n.RSS), id, n.Hostname)
		gauge(descNodeCores, float64(n.Cores), id, n.Hostname)
		gauge(descNodeMem, float64(n.MemTotal), id, n.Hostname, "total")
		gauge(descNodeMem, float64(n.MemAvailable), id, n.Hostname, "available")
		gauge(descNodeLoad, n.Load1, id, n.Hostname)
	}
}
