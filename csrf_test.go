package gdpm_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/capy-pl/gdpm"
)

const allowedOrigin = "http://app.example:3000"

// A web page from another origin cannot make a browser change anything on
// the master (issue 9): its state-changing requests are refused before
// they reach a handler, whatever they carry; an allowed origin can drive
// the API through CORS; requests from programs (no Origin) are unaffected.
func TestCrossOriginWritesAreRefusedAndAllowedOriginsWork(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "secured cluster over https"}[secure]
		t.Run(name, func(t *testing.T) { testCrossOrigin(t, secure) })
	}
}

func testCrossOrigin(t *testing.T, secure bool) {
	c := newCluster(t, clusterOpts{slaves: 0, token: "s3cret", secure: secure, master: func(cfg *gdpm.MasterConfig) {
		cfg.CORSOrigins = []string{allowedOrigin, "https://Other.Example:443/"}
	}})
	own := c.apiURL(c.master())
	id := c.create(sleepCmd(), 0)
	rev := c.etcdRev()
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, method, path, ctype, body string
		header                          []string
		msg                             string
	}{
		{"form post from another origin", "POST", "/service/", form, "Command=sleep+1", []string{"Origin", "http://localhost:3000"}, "cross-origin POST"},
		{"form post without the token", "POST", "/service/", form, "Command=sleep+1", []string{"Origin", "http://evil.example", "Authorization", ""}, "cross-origin POST"},
		{"scale from another origin", "POST", "/service/" + id, "text/plain", `{"InstanceNum":5}`, []string{"Origin", "http://evil.example"}, "cross-origin"},
		{"delete from another origin", "DELETE", "/service/" + id, "", "", []string{"Origin", "http://evil.example"}, "cross-origin DELETE"},
		{"opaque origin", "POST", "/service/", form, "Command=sleep+1", []string{"Origin", "null"}, "cross-origin"},
		{"other port of the same host", "POST", "/service/", form, "Command=sleep+1", []string{"Origin", own[:strings.LastIndex(own, ":")] + ":1"}, "cross-origin"},
		{"the other scheme of the same host", "POST", "/service/", form, "Command=sleep+1", []string{"Origin", otherScheme(own)}, "cross-origin"},
		{"cross-site without Origin", "POST", "/service/", form, "Command=sleep+1", []string{"Sec-Fetch-Site", "cross-site"}, "another site"},
		{"same-site without Origin", "DELETE", "/service/" + id, "", "", []string{"Sec-Fetch-Site", "same-site"}, "another site"},
	} {
		code, hdr, body := c.do(tc.method, tc.path, tc.ctype, tc.body, tc.header...)
		if code != http.StatusForbidden || !strings.Contains(body, tc.msg) || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want 403 with a JSON error containing %q", tc.name, code, body, tc.msg)
		}
		if v := hdr.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want none", tc.name, v)
		}
	}
	if after := c.etcdRev(); after != rev {
		t.Errorf("refused cross-origin requests wrote to etcd: revision %d -> %d", rev, after)
	}

	// A disallowed origin gets no CORS header, on a preflight or a read.
	for _, method := range []string{"OPTIONS", "GET"} {
		req, _ := http.NewRequest(method, own+"/service/", nil)
		req.Header.Set("Origin", "http://evil.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Authorization", "Bearer s3cret")
		resp := c.doReq(req)
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s from a disallowed origin: header %s: %s", method, k, resp.Header.Get(k))
			}
		}
	}

	// The allowed origin's preflight needs no token and names it, never *.
	req, _ := http.NewRequest("OPTIONS", own+"/service/", nil)
	req.Header.Set("Origin", allowedOrigin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	resp := c.doReq(req)
	h := resp.Header
	if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(h.Get("Vary"), "Origin") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "DELETE") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization, Content-Type") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
		t.Fatalf("preflight from the allowed origin: %d %v", resp.StatusCode, h)
	}
	// Its requests work, with the token, and can be read by the page.
	code, hdr, newID := c.do("POST", "/service/", "application/json", `{"Command":"true from the app","InstanceNum":0}`, "Origin", allowedOrigin)
	if code != http.StatusOK || hdr.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Fatalf("create from the allowed origin: %d %s %v", code, newID, hdr)
	}
	if code, _, body := c.do("DELETE", "/service/"+newID, "", "", "Origin", allowedOrigin); code != http.StatusOK {
		t.Fatalf("delete from the allowed origin: %d %s", code, body)
	}
	// Allowed origins are matched as browsers send them (case, default port).
	if code, _, body := c.do("POST", "/service/"+id, "application/json", `{"InstanceNum":0}`, "Origin", "https://other.example"); code != http.StatusOK {
		t.Errorf("allowed origin written with case and port: %d %s", code, body)
	}
	// Still the token is required of the allowed origin.
	if code, _, body := c.do("POST", "/service/"+id, "application/json", `{"InstanceNum":0}`, "Origin", allowedOrigin, "Authorization", ""); code != http.StatusUnauthorized {
		t.Errorf("allowed origin without the token: %d %s, want 401", code, body)
	}
	// The master's own origin (the web interface) needs nothing allowed.
	if code, _, body := c.do("POST", "/service/"+id, "application/json", `{"InstanceNum":0}`, "Origin", own, "Sec-Fetch-Site", "same-origin"); code != http.StatusOK {
		t.Errorf("same-origin scale: %d %s", code, body)
	}
	// Programs send no Origin and are not affected.
	if err := c.client.ScaleService(ctxT(t), id, 0); err != nil {
		t.Errorf("Go client: %v", err)
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0, token: "s3cret"})
	for auth, want := range map[string]int{
		"Bearer s3cret":   200,
		"bearer s3cret":   200,
		"BEARER s3cret":   200,
		"Bearer  s3cret":  200,
		"bearer S3CRET":   401, // the token itself is exact
		"bearer s3cret ":  200, // header values are trimmed
		"bearer s3cretx":  401,
		"bearers3cret":    401,
		"Basic s3cret":    401,
		"bearer":          401,
		"s3cret":          401,
		"Bearer s3cre":    401,
		"Bearer s3cret\t": 200,
	} {
		code, _, body := c.do("GET", "/node/", "", "", "Authorization", auth)
		if code != want {
			t.Errorf("Authorization %q: %d %s, want %d", auth, code, body, want)
		}
	}
}

// A master without a token answers browsers only under a loopback name: a
// page that reached it through DNS rebinding (its own name resolving to
// 127.0.0.1) would otherwise look same-origin.
func TestTokenlessMasterRefusesRebindingHosts(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	req, _ := http.NewRequest("POST", "http://"+c.master().HTTPAddr()+"/service/", strings.NewReader(`{"Command":"true"}`))
	req.Host = "evil.example:8989"
	req.Header.Set("Origin", "http://evil.example:8989")
	req.Header.Set("Content-Type", "application/json")
	resp := doReq(t, req)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("rebinding page's create: %d, want 403", resp.StatusCode)
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		_, port, _ := strings.Cut(c.master().HTTPAddr(), ":")
		req, _ := http.NewRequest("GET", "http://"+c.master().HTTPAddr()+"/service/", nil)
		req.Host = host + ":" + port
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if resp := doReq(t, req); resp.StatusCode != http.StatusOK {
			t.Errorf("browser read via %s: %d", req.Host, resp.StatusCode)
		}
	}
	if list, err := c.client.Services(ctxT(t)); err != nil || len(list) != 0 {
		t.Errorf("services %v %v, want none", list, err)
	}
}

func TestCORSOriginsAreChecked(t *testing.T) {
	for _, o := range []string{"*", "app.example", "ftp://app.example", "http://app.example/path", "http://"} {
		_, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: []string{"http://127.0.0.1:1"}, CORSOrigins: []string{o}})
		if !errors.Is(err, gdpm.ErrInvalidConfig) {
			t.Errorf("CORS origin %q: %v, want ErrInvalidConfig", o, err)
		}
	}
}

func otherScheme(u string) string {
	if s, ok := strings.CutPrefix(u, "https:"); ok {
		return "http:" + s
	}
	return "https:" + strings.TrimPrefix(u, "http:")
}

// doReq sends req through the cluster's client (https when secured) and
// returns the answer with its body read.
func (c *cluster) doReq(req *http.Request) *http.Response {
	c.t.Helper()
	resp, err := c.httpc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func doReq(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
