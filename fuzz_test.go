package gdpm

// Fuzz tests of every parser of outside input: the API's create and scale
// bodies, the log query (master and slave), the events' since, and the
// registration hello. Beyond "never panics", each checks a property the
// parser promises. The seed corpora are in testdata/fuzz/<FuzzName>/; CI
// runs each target for a few seconds (.ci/run).

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecodeCreate: an accepted body means exactly one thing. Whatever
// encoding/json or url.ParseQuery would read from it (which let the last
// or the first of two keys win, and ignore case) is what was decoded.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range [][2]string{
		{"application/json", `{"Command":"sleep 1","InstanceNum":5}`},
		{"application/json", `{"Command":"a","Env":{"A":"1"},"Dir":"/tmp","Restart":"never","StopTimeout":"2s"}`},
		{"application/json", `{"Command":"sleep 1","command":"rm -rf /"}`},
		{"application/json", `{"Command":"a","Command":"b"}`},
		{"text/plain", ` {"Command":"a"}`},
		{"application/x-www-form-urlencoded", "Command=sleep+1&InstanceNum=2&Env=A%3D1&Env=B%3D2"},
		{"application/x-www-form-urlencoded", "Command=a&Command=b"},
		{"X-www-form-urlencoded", "Command=a"},
		{"", ""},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	m := &Master{cfg: MasterConfig{MaxInstances: 100}}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		kind, err := bodyKindOf(ctype, body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not ErrBadRequest", err)
			}
			return
		}
		req, err := decodeCreateBody(body, kind)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not ErrBadRequest", err)
			}
			return
		}
		if kind == bodyJSON {
			var loose map[string]json.RawMessage
			if err := json.Unmarshal(body, &loose); err != nil {
				t.Fatalf("accepted a body encoding/json refuses: %v", err)
			}
			for k := range loose {
				if !createFields[k] {
					t.Fatalf("accepted unknown key %q", k)
				}
			}
			var cmd string
			json.Unmarshal(loose["Command"], &cmd)
			if cmd != req.Command {
				t.Fatalf("decoded Command %q, the body also reads as %q", req.Command, cmd)
			}
		} else {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				t.Fatalf("accepted a form url.ParseQuery refuses: %v", err)
			}
			if len(form["Command"]) > 1 || form.Get("Command") != req.Command {
				t.Fatalf("decoded Command %q from fields %q", req.Command, form["Command"])
			}
			for _, kv := range form["Env"] {
				k, v, _ := strings.Cut(kv, "=")
				if req.Env[k] != v {
					t.Fatalf("Env %q: decoded %q, sent %q", k, req.Env[k], v)
				}
			}
		}
		s, err := m.validateCreate(req)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("validation refusal %v is not ErrBadRequest", err)
			}
			return
		}
		// What is stored reads back as the same request.
		b, _ := json.Marshal(CreateRequest{Command: s.Command, InstanceNum: &s.InstanceNum, Env: s.Env, Dir: s.Dir, Restart: s.Restart, StopTimeout: s.StopTimeout})
		again, err := decodeCreateBody(b, bodyJSON)
		if err != nil {
			t.Fatalf("the stored spec %s does not decode: %v", b, err)
		}
		if s2, err := m.validateCreate(again); err != nil || fingerprint(s2) != fingerprint(s) {
			t.Fatalf("the stored spec %s reads back as another request: %v", b, err)
		}
	})
}

// FuzzDecodeScale: an accepted body gives the one count it holds.
func FuzzDecodeScale(f *testing.F) {
	for _, s := range [][2]string{
		{"application/json", `{"InstanceNum":3}`},
		{"X-www-form-urlencoded", `{"serviceId":"ID","InstanceNum":"3"}`},
		{"application/json", `{"InstanceNum":3,"InstanceNum":4}`},
		{"application/json", `{"InstanceNum":2,"Command":"x"}`},
		{"application/x-www-form-urlencoded", "InstanceNum=2"},
		{"application/x-www-form-urlencoded", "InstanceNum=2&serviceId=ID"},
		{"application/json", `{"InstanceNum":null}`},
	} {
		f.Add(s[0], []byte(s[1]), "ID")
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte, id string) {
		kind, err := bodyKindOf(ctype, body)
		if err != nil {
			return
		}
		n, err := decodeScaleBody(body, kind, id)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not ErrBadRequest", err)
			}
			return
		}
		var sent string
		if kind == bodyJSON {
			var loose map[string]any
			d := json.NewDecoder(bytes.NewReader(body))
			d.UseNumber()
			if err := d.Decode(&loose); err != nil {
				t.Fatalf("accepted a body encoding/json refuses: %v", err)
			}
			switch v := loose["InstanceNum"].(type) {
			case json.Number:
				sent = v.String()
			case string:
				sent = strings.TrimSpace(v)
			default:
				t.Fatalf("accepted InstanceNum %#v", v)
			}
			if s, ok := loose["serviceId"]; ok && s != id {
				t.Fatalf("accepted serviceId %v for path id %q", s, id)
			}
		} else {
			form, _ := url.ParseQuery(string(body))
			if len(form["InstanceNum"]) != 1 {
				t.Fatalf("accepted InstanceNum fields %q", form["InstanceNum"])
			}
			sent = strings.TrimSpace(form.Get("InstanceNum"))
		}
		if want, err := strconv.Atoi(sent); err != nil || want != n {
			t.Fatalf("decoded %d from InstanceNum %q", n, sent)
		}
	})
}

// FuzzParseLogQuery: the query of GET /service/:id/logs (the master) and
// of GET /logs/:service (the slaves) gives ids that stay inside the log
// directory and a bounded tail.
func FuzzParseLogQuery(f *testing.F) {
	for _, q := range []string{
		"", "tail=10", "tail=-1&follow=1", "instance=a,b&instance=c", "instance=..", "instance=a%2Fb",
		"tail=1&tail=2", "follow=true", "Tail=5", "tail=99999999999999999999",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseLogQuery(q)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not ErrBadRequest", err)
			}
			return
		}
		if lq.tail < 0 || lq.tail > maxLogTail {
			t.Fatalf("tail %d out of range", lq.tail)
		}
		for _, id := range lq.instances {
			if !pathSafeID(id) {
				t.Fatalf("accepted instance id %q", id)
			}
			if _, err := logFilePath("/logs", "svc", id, Stdout); err != nil {
				t.Fatalf("accepted instance id %q: %v", id, err)
			}
		}
	})
}

// FuzzParseSince: GET /events?since= gives a revision of 0 or more.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"", "0", "42", "-1", "1e3", "9223372036854775808", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		since, resume, err := parseSince(v)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not ErrBadRequest", err)
			}
			return
		}
		if since < 0 || resume != (v != "") {
			t.Fatalf("since %q read as %d, resume %v", v, since, resume)
		}
	})
}

// FuzzReadHello: the registration port reads at most one bounded frame
// and accepts only a gdpm hello with the token.
func FuzzReadHello(f *testing.F) {
	frame := func(v any) []byte {
		b, _ := json.Marshal(v)
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	}
	f.Add(frame(hello{Magic: protoMagic, Version: protoVersion, Token: "tok", Hostname: "h", Release: Version}))
	f.Add(frame(hello{Magic: protoMagic, Version: protoVersion, Token: "bad"}))
	f.Add(frame(map[string]any{"Magic": "gdpm", "Version": 99}))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("0123456789abcdef"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, '{'})
	f.Add(append(binary.BigEndian.AppendUint32(nil, 3), "abc"...))
	f.Add(frame(hello{Magic: protoMagic, Version: protoVersion, Token: "tok", CSR: []byte("0\x82\x01"), Addrs: []string{"10.0.0.1", "x"}}))
	ca, err := NewCA()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var h hello
		err := readFrame(r, &h)
		if len(data) >= 4 {
			if n := binary.BigEndian.Uint32(data); n > maxFrame && err == nil {
				t.Fatalf("accepted a frame of %d bytes", n)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("frame error %v is not ErrProtocol", err)
			}
			return
		}
		if consumed := len(data) - r.Len(); consumed > 4+maxFrame {
			t.Fatalf("read %d bytes for one frame", consumed)
		}
		if err := checkHello(h, "tok"); err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("hello refusal %v is neither ErrProtocol nor ErrUnauthorized", err)
			}
			return
		}
		if h.Magic != protoMagic || h.Version != protoVersion || h.Token != "tok" {
			t.Fatalf("accepted hello %+v", h)
		}
		// A joining slave's CSR, as the master signs it.
		if len(h.CSR) > 0 {
			hosts := []string{"node"}
			for _, a := range h.Addrs {
				if net.ParseIP(a) != nil { // as joinCert
					hosts = append(hosts, a)
				}
			}
			if _, err := ca.signCSR(h.CSR, certRequest{commonName: "node", ou: ouNode, hosts: hosts, client: true, server: true}); err != nil && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("CSR refusal %v is not ErrBadRequest", err)
			}
		}
	})
}
