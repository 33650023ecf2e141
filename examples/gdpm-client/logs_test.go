package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

const logService = "b22c9beb-2887-4a1f-b9b5-57d799ffc373"

// fixLogs is what logServer sends: two instances, both streams, and lines
// that a terminal must not see raw.
var fixLogs = []gdpm.LogLine{
	{Service: logService, Instance: "04c18ab53747", Node: fixNodes.Ids[0], Stream: gdpm.Stdout, Line: "listening on :8080", Time: fixLogTime(0)},
	{Service: logService, Instance: "04c18ab53747", Node: fixNodes.Ids[0], Stream: gdpm.Stdout, Line: "", Time: fixLogTime(1)},
	{Service: logService, Instance: "04c18ab53747", Node: fixNodes.Ids[0], Stream: gdpm.Stdout, Line: "GET /\t200\t3ms", Time: fixLogTime(1)},
	{Service: logService, Instance: "04c18ab53747", Node: fixNodes.Ids[0], Stream: gdpm.Stderr, Line: "warning: cache is cold", Time: fixLogTime(1500)},
	{Service: logService, Instance: "1d29bc64e858", Node: fixNodes.Ids[1], Stream: gdpm.Stdout, Line: "\x1b[31mred\x1b[0m <b>&</b> ✓", Time: fixLogTime(61_000)},
	// A line written before the nodes kept times has none.
	{Service: logService, Instance: "1d29bc64e858", Node: fixNodes.Ids[1], Stream: gdpm.Stderr, Line: "Traceback (most recent call last):\r"},
}

// fixLogTime is ms milliseconds after a time with nanoseconds (which -t
// does not print) in a zone other than UTC (which -t prints in UTC).
func fixLogTime(ms int) time.Time {
	return time.Date(2026, 12, 1, 16, 4, 5, 123_456_789, time.FixedZone("UTC+1", 3600)).Add(time.Duration(ms) * time.Millisecond)
}

// logServer serves GET /service/ID/logs as a master would: the fixture
// lines with a heartbeat among them, then, when follow is false, the end of
// the stream; a following stream stays open until the client goes. A
// service other than logService is a 404. It records the query it was
// asked with.
func logServer(t *testing.T, follow bool) (addr string, query *url.Values) {
	t.Helper()
	query = new(url.Values)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/service/" {
			// The list a name or an id prefix is looked up in.
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"Services":[]}`)
			return
		}
		id, ok := strings.CutPrefix(strings.TrimSuffix(r.URL.Path, "/"), "/service/")
		id, ok2 := strings.CutSuffix(id, "/logs")
		if !ok || !ok2 {
			http.Error(w, "unexpected request "+r.URL.Path, http.StatusBadRequest)
			return
		}
		*query = r.URL.Query()
		if id != logService {
			serveError(w, http.StatusNotFound, fmt.Sprintf("service %q: not found", id))
			return
		}
		serveNDJSON(w, fixLogs, 3)
		if follow {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, query
}

func realAPI(c gdpm.ClientConfig) (api, error) { return gdpm.NewClient(c) }

// cli runs gdpm-client against addr with the token logServer wants.
func cli(ctx context.Context, addr string, stdout io.Writer, args ...string) (code int, stderr string) {
	var errb bytes.Buffer
	code = runWith(ctx, args, stdout, &errb, env("GDPM_ADDR", addr, "GDPM_TOKEN", "tok"), realAPI)
	return code, errb.String()
}

func TestLogsVerb(t *testing.T) {
	tests := []struct {
		args   []string
		query  url.Values
		golden string
	}{
		{[]string{"logs", logService}, url.Values{}, "logs"},
		{[]string{"-o", "json", "logs", logService}, url.Values{}, "logs-json"},
		{[]string{"logs", logService, "-n", "5"}, url.Values{"tail": {"5"}}, "logs"},
		{[]string{"logs", "-n", "0", logService}, url.Values{"tail": {"-1"}}, "logs"},
		{[]string{"logs", "-instance", "04c18ab53747", logService}, url.Values{"instance": {"04c18ab53747"}}, "logs"},
		{[]string{"logs", "-t", logService}, url.Values{}, "logs-t"},
		{[]string{"logs", logService, "-t=false"}, url.Values{}, "logs"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			addr, query := logServer(t, false)
			var out bytes.Buffer
			// The stream ends after the last lines: that is done.
			code, stderr := cli(t.Context(), addr, &out, tt.args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !reflect.DeepEqual(*query, tt.query) {
				t.Errorf("query %v, want %v", *query, tt.query)
			}
			golden(t, tt.golden, out.Bytes())
		})
	}
}

func TestLogsJSONIsTheAPIs(t *testing.T) {
	addr, _ := logServer(t, false)
	var out bytes.Buffer
	cli(t.Context(), addr, &out, "logs", "-o", "json", logService)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(fixLogs) {
		t.Fatalf("want one JSON line per log line:\n%s", out.String())
	}
	for i, line := range lines {
		var l gdpm.LogLine
		err := json.Unmarshal([]byte(line), &l)
		want := fixLogs[i]
		if l.Time.Equal(want.Time) { // the same instant, whatever its zone
			l.Time = want.Time
		}
		if err != nil || l != want {
			t.Errorf("line %d: %q (%v), want %+v", i+1, line, err, fixLogs[i])
		}
	}
}

func TestLogsFollow(t *testing.T) {
	t.Run("interrupted", func(t *testing.T) {
		addr, query := logServer(t, true)
		// The user presses Ctrl-C once the last line is on the screen.
		ctx, cancel := context.WithCancel(t.Context())
		out := &cancelOnWrite{match: "Traceback", cancel: cancel}
		code, stderr := cli(ctx, addr, out, "logs", "-f", "-n", "0", logService)
		if code != exitOK || stderr != "" || strings.Count(out.String(), "\n") != len(fixLogs) {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), stderr)
		}
		if want := (url.Values{"follow": {"1"}, "tail": {"-1"}}); !reflect.DeepEqual(*query, want) {
			t.Errorf("query %v, want %v", *query, want)
		}
	})
	t.Run("the master ends the stream", func(t *testing.T) {
		addr, _ := logServer(t, false)
		var out bytes.Buffer
		code, stderr := cli(t.Context(), addr, &out, "logs", "-f", logService)
		if code != exitFailed || !strings.HasPrefix(stderr, "gdpm-client: the master ended the log stream: ") ||
			strings.Count(out.String(), "\n") != len(fixLogs) {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), stderr)
		}
	})
	t.Run("interrupted without -f", func(t *testing.T) {
		addr, _ := logServer(t, true)
		ctx, cancel := context.WithCancel(t.Context())
		out := &cancelOnWrite{match: "Traceback", cancel: cancel}
		code, stderr := cli(ctx, addr, out, "logs", logService)
		if code != exitInterrupted || stderr != "gdpm-client: interrupted\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestLogsUnknownService(t *testing.T) {
	addr, _ := logServer(t, true)
	for _, args := range [][]string{{"logs", "nope"}, {"logs", "-f", "nope"}} {
		var out bytes.Buffer
		code, stderr := cli(t.Context(), addr, &out, args...)
		if code != exitFailed || out.Len() > 0 || stderr != "gdpm-client: service \"nope\": not found (HTTP 404)\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), stderr)
		}
	}
}

// A marker line (an instance's process started or exited) is marked "*",
// with or without its time.
func TestLogsMarkerLine(t *testing.T) {
	l := gdpm.LogLine{Instance: "04c18ab53747", Stream: gdpm.Stdout, Mark: "exited", Line: "exited (code 137)", Time: fixLogTime(0)}
	var b bytes.Buffer
	renderLogLine(&b, l, false)
	renderLogLine(&b, l, true)
	want := "04c18ab53747 * exited (code 137)\n2026-12-01T15:04:05.123Z 04c18ab53747 * exited (code 137)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
