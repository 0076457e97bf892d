package node

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/hsm"
)

// maxUsers is CloudHSM's per-cluster user quota, which HsmUsersAvailable
// counts down from as CloudWatch does. (The device does not enforce it.)
const maxUsers = 1024

// metrics are the node's Prometheus metrics, in a registry of its own. The
// gauges named like CloudWatch's metrics are refreshed at each scrape.
type metrics struct {
	n   *Node
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// refreshMu serializes scrapes, which set the gauges below.
	refreshMu      sync.Mutex
	tokenObjects   prometheus.Gauge
	sessionObjects prometheus.Gauge
	sessions       prometheus.Gauge
	usersAvailable prometheus.Gauge
	usersMax       prometheus.Gauge
	unhealthy      prometheus.Gauge
	ready          prometheus.Gauge
	lag            *prometheus.GaugeVec
	lagRecords     *prometheus.GaugeVec
	behind         *prometheus.GaugeVec
	behindRecords  *prometheus.GaugeVec
	linkLag        *prometheus.GaugeVec
	linkBehind     *prometheus.GaugeVec
	linkUp         *prometheus.GaugeVec
}

func newMetrics(n *Node) *metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{
		n:   n,
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_rpc_requests_total", Help: "RPCs served, by service, method and gRPC code.",
		}, []string{"service", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coffer_rpc_duration_seconds", Help: "Time to serve an RPC, by service and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"service", "method"}),
		tokenObjects:   gauge("HsmKeysTokenOccupied", "Token objects (keys) on the HSM."),
		sessionObjects: gauge("HsmKeysSessionOccupied", "Session objects (keys) on the HSM."),
		sessions:       gauge("HsmSessionCount", "Open client sessions."),
		usersAvailable: gauge("HsmUsersAvailable", "Users that can still be created (HsmUsersMax minus users)."),
		usersMax:       gauge("HsmUsersMax", "Most users a cluster may have."),
		unhealthy:      gauge("HsmUnhealthy", "1 if the HSM is not performing properly (audit log or store failing), else 0."),
		ready:          gauge("coffer_ready", "1 once the device is loaded and synchronization has caught up."),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coffer_sync_lag_seconds", Help: "Age of the oldest local change a peer has not confirmed (0 in sync).",
		}, []string{"peer"}),
		lagRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coffer_sync_lag_records", Help: "Local changes a peer has not confirmed yet (the records of coffer_sync_lag_seconds).",
		}, []string{"peer"}),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coffer_sync_behind_seconds", Help: "How far this HSM is behind a peer: age of the oldest change the peer has not delivered, as it last reported (0 in sync).",
		}, []string{"peer"}),
		behindRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coffer_sync_behind_records", Help: "Records a peer still has to deliver to this HSM, as last learned (its queue for this HSM, plus what anti-entropy is fetching).",
		}, []string{"peer"}),
		linkLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coffer_replication_link_lag_seconds", Help: "Outbound replication link: age of the oldest change of this cluster not known to be on the clone (0 in sync; an upper bound while the clone is unreachable).",
		}, []string{"cluster"}),
		linkBehind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coffer_replication_link_records_behind", Help: "Outbound replication link: records of this cluster not known to be on the clone.",
		}, []string{"cluster"}),
		linkUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coffer_replication_link_in_sync", Help: "1 if the last round of the replication link succeeded (outbound) or the source was admitted within the last minute (inbound), else 0.",
		}, []string{"cluster", "direction"}),
	}
	// coffer_build_info is 1, labelled with what this node runs.
	cb := cryptobackend.Current()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coffer_build_info", Help: "1, labelled with the node's version, crypto backend (go or boringcrypto), whether Go's FIPS 140-3 mode is on and enforced (fips140=only), the FIPS 140-3 module in use (none: \"\") and whether the HSM is in FIPS mode.",
		ConstLabels: prometheus.Labels{"version": n.cfg.Version, "crypto_backend": cb.Name, "fips140": strconv.FormatBool(cb.FIPS140),
			"fips140_enforced": strconv.FormatBool(cb.Enforced), "fips_module": cb.Module(), "fips_mode": strconv.FormatBool(n.cfg.Device.FIPS)},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(buildInfo)
	// coffer_cluster_activated is how the control plane learns that the
	// cluster was activated (and NodeInfo's activated is how clients do).
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "coffer_cluster_activated", Help: "1 once the cluster's pre-admin has activated it, as this HSM knows, else 0.",
	}, func() float64 {
		if n.activated() {
			return 1
		}
		return 0
	}))
	m.reg.MustRegister(m.linkLag, m.linkBehind, m.linkUp)
	m.reg.MustRegister(m.requests, m.latency, m.tokenObjects, m.sessionObjects, m.sessions,
		m.usersAvailable, m.usersMax, m.unhealthy, m.ready, m.lag, m.lagRecords, m.behind, m.behindRecords,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(service, method, code string, d time.Duration) {
	m.requests.WithLabelValues(service, method, code).Inc()
	m.latency.WithLabelValues(service, method).Observe(d.Seconds())
}

// refresh sets the gauges from the node's state.
func (m *metrics) refresh(r *http.Request) {
	n := m.n
	st, err := n.stats(r.Context())
	unhealthy := err != nil || n.audit.Err() != nil
	if err != nil {
		n.log.Warn("metrics: reading the store", "err", err)
	}
	m.tokenObjects.Set(float64(st.tokenObjects))
	m.sessionObjects.Set(float64(st.sessionObjects))
	m.sessions.Set(float64(st.sessions))
	m.usersMax.Set(maxUsers)
	m.usersAvailable.Set(float64(max(maxUsers-st.users, 0)))
	m.unhealthy.Set(b2f(unhealthy))
	m.ready.Set(b2f(n.Ready()))
	sy := n.syncState()
	for _, p := range n.peers {
		peer := strconv.FormatUint(uint64(p.id), 10)
		m.lag.WithLabelValues(peer).Set(sy.lag[p.id].Seconds())
		m.lagRecords.WithLabelValues(peer).Set(float64(sy.queued[p.id]))
		m.behind.WithLabelValues(peer).Set(sy.behind[p.id].Lag.Seconds())
		m.behindRecords.WithLabelValues(peer).Set(float64(sy.behind[p.id].Records))
	}
	m.linkLag.Reset()
	m.linkBehind.Reset()
	m.linkUp.Reset()
	if dev := n.dev.Load(); dev != nil {
		for _, l := range dev.ReplicationLinks() {
			st := n.linkState(l)
			up := st.state == linkInSync || st.state == linkReceiving
			m.linkUp.WithLabelValues(l.ClusterID, l.Direction.String()).Set(b2f(up))
			if l.Direction == hsm.LinkOutbound {
				m.linkLag.WithLabelValues(l.ClusterID).Set(st.lag.Seconds())
				m.linkBehind.WithLabelValues(l.ClusterID).Set(float64(st.behind))
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// handler serves /healthz (the process is alive), /readyz (200 only once
// the device is loaded and peersync is ready) and /metrics.
func (m *metrics) handler() http.Handler {
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := m.n.notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		m.refreshMu.Lock()
		defer m.refreshMu.Unlock()
		m.refresh(r)
		prom.ServeHTTP(w, r)
	})
	return mux
}
