package gdpm

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
)

// A secured slave's log server takes the masters' certificates only: not
// another node's (a slave cannot read its peers' logs), not one from
// another CA, not none.
func TestLogServerTakesMasterCertificatesOnly(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *CA, ou string) *tls.Certificate {
		ic, err := ca.issue(certRequest{commonName: ou, ou: ou, hosts: []string{"127.0.0.1"}, client: true, server: true})
		if err != nil {
			t.Fatal(err)
		}
		return ic.tlsCert()
	}
	ss := &slaveSec{cert: issue(ca, ouNode), ca: ca.Pool()}
	ls, err := startLogServer("127.0.0.1:0", t.TempDir(), "", ss.logServerTLS(), ServerLimits{}, func() string { return "n1" }, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	get := func(cert *tls.Certificate) (int, error) {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + ls.ln.Addr().String() + "/logs/00000000-0000-0000-0000-000000000000")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(issue(ca, ouMaster)); err != nil || code != http.StatusOK {
		t.Fatalf("a master's certificate: %d %v, want 200", code, err)
	}
	for name, cert := range map[string]*tls.Certificate{
		"another node's certificate": issue(ca, ouNode),
		"a master's from another CA": issue(other, ouMaster),
		"no certificate":             nil,
	} {
		if code, err := get(cert); err == nil {
			t.Errorf("%s: answered %d, want the handshake refused", name, code)
		}
	}
}
