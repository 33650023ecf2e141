package gdpm_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// uiGet sends a request without the token, as a browser loading the page
// does, and does not follow redirects.
func uiGet(t *testing.T, c *cluster, method, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+c.master().HTTPAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// uiFiles lists the files under ui/, which the master embeds.
func uiFiles(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("ui")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) < 3 {
		t.Fatalf("ui/ holds %v; want at least index.html, app.js and style.css", names)
	}
	return names
}

func TestUIServedWithoutToken(t *testing.T) {
	c := newCluster(t, clusterOpts{token: "ui-secret"})
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
		".svg":  "image/svg+xml",
	}
	paths := map[string]string{"/ui/": "index.html"}
	for _, name := range uiFiles(t) {
		paths["/ui/"+name] = name
	}
	for path, name := range paths {
		t.Run(path, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("ui", name))
			if err != nil {
				t.Fatal(err)
			}
			resp, body := uiGet(t, c, http.MethodGet, path)
			if resp.StatusCode != http.StatusOK || body != string(want) {
				t.Fatalf("GET %s: %d, %d bytes; want 200 and ui/%s (%d bytes)", path, resp.StatusCode, len(body), name, len(want))
			}
			h := resp.Header
			if ct := h.Get("Content-Type"); ct != types[filepath.Ext(name)] {
				t.Errorf("Content-Type %q, want %q", ct, types[filepath.Ext(name)])
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("Content-Security-Policy %q: want default-src 'self' and nothing unsafe", csp)
			}
			if h.Get("Cache-Control") == "" || h.Get("ETag") == "" {
				t.Errorf("Cache-Control %q, ETag %q: want both", h.Get("Cache-Control"), h.Get("ETag"))
			}
			again, _ := uiGet(t, c, http.MethodGet, path, "If-None-Match", h.Get("ETag"))
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("GET with If-None-Match: %d, want 304", again.StatusCode)
			}
		})
	}
}

func TestUIRoutes(t *testing.T) {
	c := newCluster(t, clusterOpts{token: "ui-secret"})
	for _, tc := range []struct {
		method, path string
		status       int
		location     string // for a redirect
		json         bool   // an {"error": ...} body
	}{
		{method: "GET", path: "/ui", status: http.StatusMovedPermanently, location: "ui/"},
		{method: "HEAD", path: "/ui/", status: http.StatusOK},
		{method: "GET", path: "/ui/missing.js", status: http.StatusNotFound, json: true},
		{method: "GET", path: "/ui/sub/", status: http.StatusNotFound, json: true},
		{method: "POST", path: "/ui/", status: http.StatusMethodNotAllowed, json: true},
		// The exemption is the /ui tree, not a prefix of other paths, and a
		// path under /ui never reaches an API route.
		{method: "GET", path: "/uix", status: http.StatusUnauthorized, json: true},
		{method: "GET", path: "/ui/../service/", status: http.StatusNotFound, json: true},
		{method: "GET", path: "/service/", status: http.StatusUnauthorized, json: true},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := uiGet(t, c, tc.method, tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if loc := resp.Header.Get("Location"); loc != tc.location {
				t.Errorf("Location %q, want %q", loc, tc.location)
			}
			if tc.json {
				var e struct{ Error string }
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
					t.Errorf("Content-Type %q, body %q: want a JSON error", ct, body)
				}
			}
		})
	}
}

// TestUIAssetsAreSelfContained keeps the page working offline and under its
// Content-Security-Policy: no external URL, no inline script, style or
// event handler.
func TestUIAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?:`)
	inline := regexp.MustCompile(`(?i)\sstyle\s*=|\son[a-z]+\s*=|<style[\s>]|javascript:`)
	for _, name := range uiFiles(t) {
		b, err := os.ReadFile(filepath.Join("ui", name))
		if err != nil {
			t.Fatal(err)
		}
		// An SVG names its XML namespace with a URL that is never fetched.
		text := strings.ReplaceAll(string(b), `xmlns="http://www.w3.org/2000/svg"`, "")
		if m := external.FindString(text); m != "" {
			t.Errorf("ui/%s references an external URL: %q", name, m)
		}
		if filepath.Ext(name) == ".html" {
			for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(text, -1) {
				if !strings.Contains(tag, " src=") {
					t.Errorf("ui/%s: inline script %q", name, tag)
				}
			}
			if m := inline.FindString(text); m != "" {
				t.Errorf("ui/%s: inline code or style %q blocked by the page's CSP", name, m)
			}
		}
	}
}
