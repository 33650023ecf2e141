package gdpm

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/capy-pl/gdpm/internal/netaddr"
)

// Browsers and the API. A web page from any origin can make a browser send
// a "simple" request (a form post) to the master without a preflight: the
// page cannot read the answer, but the write happens. So a state-changing
// request that a browser marks as coming from another origin is refused
// before it reaches a handler, unless that origin was allowed
// (MasterConfig.CORSOrigins). Requests without Origin or Sec-Fetch-Site
// (curl, the CLI, the Go client) are not browser requests and pass.
//
// An allowed origin also gets CORS answers, preflights included, so a web
// app served elsewhere can drive the API with the token. Everything else
// gets no CORS header at all: the browser keeps its answers from the page.

// corsMethods are the methods an allowed origin may use.
const corsMethods = "GET, POST, DELETE"

// corsHeaders are the request headers an allowed origin may send.
const corsHeaders = "Authorization, Content-Type, " + IdempotencyKeyHeader

// parseOrigins checks and normalizes MasterConfig.CORSOrigins.
func parseOrigins(origins []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, o := range origins {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("%w: CORS origin %q: %v (want scheme://host[:port], for example https://app.example.com)", ErrInvalidConfig, o, err)
		}
		out[n] = true
	}
	return out, nil
}

// normalizeOrigin returns an origin as browsers send it: lower-case scheme
// and host, no default port.
func normalizeOrigin(o string) (string, error) {
	if o == "*" {
		return "", fmt.Errorf("a wildcard would let every site drive the API: name the origins")
	}
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", fmt.Errorf("scheme must be http or https")
	case u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("no host")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("an origin has no path, query or user")
	}
	return scheme + "://" + hostWithoutDefaultPort(scheme, u.Host), nil
}

func hostWithoutDefaultPort(scheme, host string) string {
	host = strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil &&
		(scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}

// ownOrigin is the origin the request was sent to: its Host over the
// scheme in use.
func ownOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + hostWithoutDefaultPort(scheme, r.Host)
}

func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// csrf guards next against cross-origin browser requests and answers CORS
// for the allowed origins. It runs before authorize: a preflight carries no
// token.
func (m *Master) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		site := strings.ToLower(r.Header.Get("Sec-Fetch-Site"))
		if origin == "" && site == "" {
			next.ServeHTTP(w, r) // not a browser
			return
		}
		// Without a token the master listens on loopback only, and only a
		// page that reached it through DNS rebinding (evil.example resolving
		// to 127.0.0.1) names another host: its requests look same-origin.
		if m.cfg.Token == "" && !netaddr.IsLoopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("browser request for host %q refused: a master without a token answers browsers on loopback names only (localhost, 127.0.0.1, [::1])", r.Host))
			return
		}
		norm, err := normalizeOrigin(origin)
		allowed := origin != "" && err == nil && m.cors[norm]
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", RevisionHeader+", "+IdempotentReplayedHeader)
		}
		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				writeError(w, http.StatusForbidden, fmt.Sprintf("origin %q is not allowed: start the master with -cors-origin %s to allow it", origin, origin))
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if changesState(r.Method) && !allowed {
			switch {
			case origin != "" && (err != nil || norm != ownOrigin(r)):
				writeError(w, http.StatusForbidden, fmt.Sprintf("cross-origin %s from %q refused: nothing was changed; start the master with -cors-origin %s to allow that origin", r.Method, origin, origin))
				return
			case origin == "" && (site == "cross-site" || site == "same-site"):
				writeError(w, http.StatusForbidden, fmt.Sprintf("%s request from another site (Sec-Fetch-Site: %s) refused: nothing was changed", r.Method, site))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
