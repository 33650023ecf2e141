package gdpm

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// masterMetrics are one master's Prometheus metrics, served on GET
// /metrics. They live in a registry of the master's own, never the global
// one, so that several masters can run in one process.
type masterMetrics struct {
	reg          *prometheus.Registry
	handler      http.Handler
	requests     *prometheus.CounterVec
	etcdErrors   prometheus.Counter
	schedLatency prometheus.Histogram
	streams      atomic.Int64 // open GET /events streams
}

func newMasterMetrics(m *Master) *masterMetrics {
	mm := &masterMetrics{reg: prometheus.NewRegistry()}
	mm.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdpm_api_requests_total",
		Help: `HTTP API requests answered, by route pattern ("other" when no route matched), method and status code.`,
	}, []string{"route", "method", "code"})
	mm.etcdErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gdpm_etcd_errors_total",
		Help: "Operations of this master that failed because etcd could not be reached in time.",
	})
	mm.schedLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gdpm_scheduler_latency_seconds",
		Help:    "Time from the scheduler seeing a service created or changed to the placements it made for it being committed.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms to 16s
	})
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(opts prometheus.GaugeOpts, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(opts, f)
	}
	mm.reg.MustRegister(
		mm.requests, mm.etcdErrors, mm.schedLatency,
		counter("gdpm_scheduler_placements_total", "Instances this master's scheduler put on a node.", &m.stats.Placements),
		counter("gdpm_scheduler_removals_total", "Instances this master's scheduler removed.", &m.stats.Removals),
		counter("gdpm_scheduler_transactions_total", "Write transactions this master's scheduler committed.", &m.stats.Txns),
		counter("gdpm_scheduler_written_bytes_total", "Bytes of keys and values this master's scheduler wrote.", &m.stats.TxnBytes),
		gauge(prometheus.GaugeOpts{Name: "gdpm_is_leader", Help: "1 while this master is the elected scheduling leader, else 0."}, func() float64 {
			if m.IsLeader() {
				return 1
			}
			return 0
		}),
		gauge(prometheus.GaugeOpts{Name: "gdpm_event_streams", Help: "Open GET /events streams on this master."}, func() float64 {
			return float64(mm.streams.Load())
		}),
		gauge(prometheus.GaugeOpts{
			Name:        "gdpm_master_info",
			Help:        "Always 1; the labels name this master and its gdpm version.",
			ConstLabels: prometheus.Labels{"id": m.cfg.ID, "version": Version},
		}, func() float64 { return 1 }),
		clusterCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mm.handler = promhttp.HandlerFor(mm.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return mm
}

// countEtcdError counts err if it is etcd being unavailable or not
// answering a write.
func (mm *masterMetrics) countEtcdError(err error) {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) {
		mm.etcdErrors.Inc()
	}
}

func (mm *masterMetrics) observeSchedLatency(d time.Duration) { mm.schedLatency.Observe(d.Seconds()) }

// handleMetrics serves GET /metrics in the Prometheus text format.
func (m *Master) handleMetrics(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	m.metrics.handler.ServeHTTP(w, r)
}

// instrument counts every request of next by route pattern, method and
// status code. names maps a request to its route pattern (see Handler):
// the pattern, not the path, keeps the number of series bounded, and
// looking it up before next runs names the requests that the token check
// refuses too.
func (mm *masterMetrics) instrument(names *httprouter.Router, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, route: "other", method: "other"}
		if h, _, _ := names.Lookup(r.Method, r.URL.Path); h != nil {
			h(rec, r, nil)
		}
		next.ServeHTTP(rec, r)
		code := rec.status
		if code == 0 {
			code = http.StatusOK
		}
		mm.requests.WithLabelValues(rec.route, rec.method, strconv.Itoa(code)).Inc()
	})
}

// nameRoute makes names map method and path to the route label.
func nameRoute(names *httprouter.Router, method, path, label string) {
	names.Handle(method, path, func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		if rec, ok := w.(*statusRecorder); ok {
			rec.route, rec.method = label, method
		}
	})
}

// statusRecorder remembers the status code a handler answered with.
// http.ResponseController reaches the connection through Unwrap, which
// the event stream needs to flush and set write deadlines.
type statusRecorder struct {
	http.ResponseWriter
	status        int
	route, method string
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() { http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// clusterCollector reports the cluster as etcd has it: nodes, services and
// instances. Every master reports the same values.
//
// The values are read from etcd at scrape time: the nodes, then the
// services, placements and statuses at the same revision, which is what GET
// /service/ reads. That is a scan of the prefix per scrape, fine at the
// cluster sizes gdpm runs now; a larger cluster would keep the counts
// current from a watch instead.
type clusterCollector struct{ m *Master }

var (
	descNodes = prometheus.NewDesc("gdpm_nodes",
		"Registered nodes by status (online, draining).", []string{"status"}, nil)
	descServices = prometheus.NewDesc("gdpm_services",
		"Services.", nil, nil)
	descInstances = prometheus.NewDesc("gdpm_instances",
		"Instances by state, as GET /service/ID/ shows them.", []string{"state"}, nil)
	descRestarts = prometheus.NewDesc("gdpm_instance_restarts",
		"Sum of the restart counts of the instances placed now, as their slaves report them; it drops when instances go away.", nil, nil)
	descEtcdUp = prometheus.NewDesc("gdpm_etcd_up",
		"1 when this scrape read the cluster state from etcd; 0 when it could not, and the cluster gauges are left out.", nil, nil)
)

// instanceStates are the states gdpm_instances always reports, zero or not.
var instanceStates = []InstanceState{StateRunning, StatePending, StateAssigned, StateBackoff, StateExited, StateFailed, StateStopping}

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append([]*prometheus.Desc{descNodes, descServices, descInstances, descRestarts, descEtcdUp}, usageDescs...) {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	s, err := c.m.readClusterCounts()
	if err != nil {
		c.m.metrics.countEtcdError(err)
		c.m.log.Debug("metrics: cannot read the cluster state", "err", err)
		gauge(descEtcdUp, 0)
		return
	}
	gauge(descEtcdUp, 1)
	gauge(descNodes, float64(s.online), "online")
	gauge(descNodes, float64(s.draining), "draining")
	gauge(descServices, float64(s.services))
	for _, st := range instanceStates {
		gauge(descInstances, float64(s.instances[st]), string(st))
	}
	gauge(descRestarts, float64(s.restarts))
	s.usage.collect(gauge) // metrics_usage.go
}

type clusterCounts struct {
	online, draining, services, restarts int
	instances                            map[InstanceState]int
	usage                                usageCounts
}

func (m *Master) readClusterCounts() (clusterCounts, error) {
	var s clusterCounts
	if m.runCtx == nil {
		return s, errors.New("gdpm: master not started")
	}
	ctx, cancel := context.WithTimeout(m.runCtx, m.cfg.RequestTimeout)
	defer cancel()
	nodes, rev, err := m.readNodes(ctx)
	if err != nil {
		return s, err
	}
	for _, n := range nodes {
		switch n.Status {
		case NodeOnline:
			s.online++
		case NodeDraining:
			s.draining++
		}
	}
	services, err := m.readServices(ctx, rev)
	if err != nil {
		return s, err
	}
	s.services = len(services)
	t, err := m.readInstances(ctx, rev, "")
	if err != nil {
		return s, err
	}
	usage, err := m.readUsage(ctx, rev)
	if err != nil {
		return s, err
	}
	s.usage = readUsageCounts(t, services, usage)
	s.instances = map[InstanceState]int{}
	for svc, insts := range t.where {
		for inst := range insts {
			in := t.info(svc, inst)
			s.instances[in.State]++
			s.restarts += in.Restarts
		}
	}
	return s, nil
}
