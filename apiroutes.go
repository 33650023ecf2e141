package gdpm

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// The master's HTTP API: its routes, the token check in front of them, and
// how an error becomes a status (statusOf, httpstatus.go). The handlers are
// in api.go (services and nodes), events.go, metrics.go, masterlogs.go and
// apilifecycle.go; what they read from etcd is in readmodel.go.

// Handler returns the master's HTTP API. Start serves it on HTTPAddr; an
// embedding program may mount it elsewhere instead.
func (m *Master) Handler() http.Handler {
	r := httprouter.New()
	// Paths answer with and without the trailing slash, never by redirect:
	// clients of the seed API POST to both forms.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed on this route")
	})
	r.PanicHandler = func(w http.ResponseWriter, _ *http.Request, v any) {
		m.log.Error("api handler panic", "panic", v)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
	names := httprouter.New() // route patterns, for the request metrics
	both := func(method, path string, h httprouter.Handle) {
		r.Handle(method, path, h)
		r.Handle(method, path+"/", h)
		nameRoute(names, method, path, path)
		nameRoute(names, method, path+"/", path)
	}
	both(http.MethodGet, "/node", m.handleListNodes)
	both(http.MethodGet, "/node/:id", m.handleGetNode)
	both(http.MethodGet, "/service", m.handleListServices)
	both(http.MethodPost, "/service", m.handleCreateService)
	both(http.MethodGet, "/service/:id", m.handleGetService)
	both(http.MethodPost, "/service/:id", m.handleScaleService)
	both(http.MethodDelete, "/service/:id", m.handleDeleteService)
	both(http.MethodPut, "/service/:id", m.handlePutService)
	both(http.MethodGet, "/service/:id/logs", m.handleServiceLogs)
	both(http.MethodPost, "/service/:id/stop", m.handleStopService)
	both(http.MethodPost, "/service/:id/start", m.handleStartService)
	both(http.MethodPost, "/service/:id/restart", m.handleRestartService)
	both(http.MethodGet, "/events", m.handleEvents)
	both(http.MethodGet, "/metrics", m.handleMetrics)
	m.routeUI(r, names)
	r.GET("/healthz", m.handleHealth)
	nameRoute(names, http.MethodGet, "/healthz", "/healthz")
	return m.metrics.instrument(names, m.csrf(m.authorize(r)))
}

// authorize requires the cluster token on every route but /healthz and the
// web interface's files under /ui.
func (m *Master) authorize(next http.Handler) http.Handler {
	if m.cfg.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && !isUIPath(r.URL.Path) && !bearerOK(r, m.cfg.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gdpm"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// fail answers err with the status its sentinel calls for (statusTable).
func (m *Master) fail(w http.ResponseWriter, r *http.Request, err error) {
	m.metrics.countEtcdError(err)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = fmt.Errorf("request body exceeds %d bytes: %w", tooBig.Limit, ErrTooLarge)
	}
	status := statusOf(err)
	if status >= 500 {
		m.log.Warn("api error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, apiMessage(err))
}

func (m *Master) etcdCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), m.cfg.RequestTimeout)
}
