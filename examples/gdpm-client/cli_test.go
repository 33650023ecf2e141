package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

const defAddr = gdpm.DefaultClientAddr

func intp(n int) *int { return &n }

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParse(t *testing.T) {
	create := func(command string, n int) gdpm.CreateRequest {
		return gdpm.CreateRequest{Command: command, InstanceNum: intp(n)}
	}
	tests := []struct {
		name string
		args []string
		env  func(string) string
		want command
	}{
		{"get nodes", []string{"get", "nodes"}, nil,
			command{Kind: kindGetNodes, Topic: "get", Addr: defAddr, Output: outTable}},
		{"get node", []string{"get", "node", "N1"}, nil,
			command{Kind: kindGetNode, Topic: "get", Addr: defAddr, Output: outTable, ID: "N1"}},
		{"get services", []string{"get", "services"}, nil,
			command{Kind: kindGetServices, Topic: "get", Addr: defAddr, Output: outTable}},
		{"get service", []string{"get", "service", "S1"}, nil,
			command{Kind: kindGetService, Topic: "get", Addr: defAddr, Output: outTable, ID: "S1"}},
		{"global flags before the verb", []string{"-o", "json", "-addr", "h:1", "-token", "T", "get", "nodes"}, nil,
			command{Kind: kindGetNodes, Topic: "get", Addr: "h:1", Token: "T", Output: outJSON}},
		{"global flags last, = and -- forms", []string{"get", "nodes", "--o=json", "--addr=http://h:2/gdpm", "-token="}, nil,
			command{Kind: kindGetNodes, Topic: "get", Addr: "http://h:2/gdpm", Output: outJSON}},
		{"global flags between words", []string{"get", "-o", "json", "service", "S1"}, nil,
			command{Kind: kindGetService, Topic: "get", Addr: defAddr, Output: outJSON, ID: "S1"}},
		{"env defaults", []string{"get", "nodes"}, env("GDPM_ADDR", "master:8989", "GDPM_TOKEN", "envtok"),
			command{Kind: kindGetNodes, Topic: "get", Addr: "master:8989", Token: "envtok", Output: outTable}},
		{"flags override env", []string{"get", "nodes", "-addr", "other:1", "-token", "flagtok"}, env("GDPM_ADDR", "master:8989", "GDPM_TOKEN", "envtok"),
			command{Kind: kindGetNodes, Topic: "get", Addr: "other:1", Token: "flagtok", Output: outTable}},
		{"a CA hash means https", []string{"get", "nodes", "-ca-hash", "sha256:abababababababababababababababababababababababababababababababab"}, nil,
			command{Kind: kindGetNodes, Topic: "get", Addr: "https://127.0.0.1:8989", CAHash: "sha256:abababababababababababababababababababababababababababababababab", Output: outTable}},
		{"CA from env, host:port means https", []string{"get", "nodes"}, env("GDPM_ADDR", "master:8989", "GDPM_TLS_CA", "/ca.crt"),
			command{Kind: kindGetNodes, Topic: "get", Addr: "https://master:8989", TLSCA: "/ca.crt", Output: outTable}},
		{"empty token flag clears env", []string{"get", "nodes", "-token", ""}, env("GDPM_TOKEN", "envtok"),
			command{Kind: kindGetNodes, Topic: "get", Addr: defAddr, Output: outTable}},
		{"last repeated flag wins", []string{"get", "nodes", "-o", "json", "-o", "table"}, nil,
			command{Kind: kindGetNodes, Topic: "get", Addr: defAddr, Output: outTable}},

		{"update, -r after ID (the original scaled to 1)", []string{"update", "S1", "-r", "2"}, nil,
			command{Kind: kindUpdate, Topic: "update", Addr: defAddr, Output: outTable, ID: "S1", N: 2}},
		{"update, -r before ID", []string{"update", "-r", "2", "S1"}, nil,
			command{Kind: kindUpdate, Topic: "update", Addr: defAddr, Output: outTable, ID: "S1", N: 2}},
		{"update, -r before the verb", []string{"-r=0", "update", "S1"}, nil,
			command{Kind: kindUpdate, Topic: "update", Addr: defAddr, Output: outTable, ID: "S1", N: 0}},
		{"delete", []string{"delete", "S1"}, nil,
			command{Kind: kindDelete, Topic: "delete", Addr: defAddr, Output: outTable, IDs: []string{"S1"}}},
		{"delete an id that looks like a flag", []string{"delete", "--", "-S1"}, nil,
			command{Kind: kindDelete, Topic: "delete", Addr: defAddr, Output: outTable, IDs: []string{"-S1"}}},
		{"a lone dash is a word", []string{"delete", "-"}, nil,
			command{Kind: kindDelete, Topic: "delete", Addr: defAddr, Output: outTable, IDs: []string{"-"}}},

		{"create, default one instance", []string{"create", "sleep", "60"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 1, Create: create("sleep 60", 1)}},
		{"create, every flag", []string{"create", "-r", "3", "-e", "A=1", "-e", "B=x=y", "-e", "EMPTY=", "-dir", "/srv",
			"-restart", "on-failure", "-stop-timeout", "1m30s", "python3", "/srv/app.py"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 3, Create: gdpm.CreateRequest{
				Command: "python3 /srv/app.py", InstanceNum: intp(3), Env: map[string]string{"A": "1", "B": "x=y", "EMPTY": ""},
				Dir: "/srv", Restart: gdpm.RestartOnFailure, StopTimeout: gdpm.Duration(90 * time.Second)}}},
		{"create, flags after the command words", []string{"create", "python3", "app.py", "-r", "2", "-restart=never"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 2,
				Create: gdpm.CreateRequest{Command: "python3 app.py", InstanceNum: intp(2), Restart: gdpm.RestartNever}}},
		{"create, -- makes the rest the command", []string{"create", "-r", "2", "--", "python3", "-u", "app.py", "-r", "5", "--", "x"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 2, Create: create("python3 -u app.py -r 5 -- x", 2)}},
		{"create, words are quoted for the shell", []string{"create", "--", "sh", "-c", "exit 3"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 1, Create: create("sh -c 'exit 3'", 1)}},
		{"create, one word is a shell line as is", []string{"create", "cd /srv && ./app > out.log 2>&1"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 1, Create: create("cd /srv && ./app > out.log 2>&1", 1)}},
		{"create, -h after -- is part of the command", []string{"create", "--", "ls", "-h"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 1, Create: create("ls -h", 1)}},
		{"create, stop timeout in seconds", []string{"create", "-stop-timeout", "2.5", "x"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 1,
				Create: gdpm.CreateRequest{Command: "x", InstanceNum: intp(1), StopTimeout: gdpm.Duration(2500 * time.Millisecond)}}},
		{"create, zero instances", []string{"create", "-r", "0", "x"}, nil,
			command{Kind: kindCreate, Topic: "create", Addr: defAddr, Output: outTable, N: 0, Create: create("x", 0)}},

		{"events", []string{"events"}, nil,
			command{Kind: kindEvents, Topic: "events", Addr: defAddr, Output: outTable}},
		{"events -since, json", []string{"events", "-since", "1042", "-o", "json"}, nil,
			command{Kind: kindEvents, Topic: "events", Addr: defAddr, Output: outJSON, Since: 1042}},
		{"events -since=0 is from now", []string{"-since=0", "events"}, nil,
			command{Kind: kindEvents, Topic: "events", Addr: defAddr, Output: outTable}},

		{"logs", []string{"logs", "S1"}, nil,
			command{Kind: kindLogs, Topic: "logs", Addr: defAddr, Output: outTable, ID: "S1"}},
		{"logs, every flag", []string{"logs", "-f", "-n", "20", "-instance", "04c18ab53747", "S1"}, nil,
			command{Kind: kindLogs, Topic: "logs", Addr: defAddr, Output: outTable, ID: "S1",
				Logs: gdpm.LogsOptions{Instance: "04c18ab53747", Tail: 20, Follow: true}}},
		{"logs -n 0 is no lines", []string{"logs", "S1", "-n", "0", "--f=true", "-o", "json"}, nil,
			command{Kind: kindLogs, Topic: "logs", Addr: defAddr, Output: outJSON, ID: "S1",
				Logs: gdpm.LogsOptions{Tail: -1, Follow: true}}},
		{"logs -f=false", []string{"-f", "logs", "-f=false", "S1"}, nil,
			command{Kind: kindLogs, Topic: "logs", Addr: defAddr, Output: outTable, ID: "S1"}},

		{"version", []string{"version"}, nil,
			command{Kind: kindVersion, Topic: "version", Output: outTable}},
		{"version ignores a bad GDPM_ADDR", []string{"version", "-o", "json"}, env("GDPM_ADDR", "ftp://nope"),
			command{Kind: kindVersion, Topic: "version", Addr: "ftp://nope", Output: outJSON}},
		{"help verb", []string{"help"}, nil, command{Kind: kindHelp}},
		{"help verb with a topic", []string{"help", "create"}, nil, command{Kind: kindHelp, Topic: "create"}},
		{"help help", []string{"help", "help"}, nil, command{Kind: kindHelp}},
		{"-h alone", []string{"-h"}, nil, command{Kind: kindHelp}},
		{"-help on a verb", []string{"get", "-help"}, nil, command{Kind: kindHelp, Topic: "get"}},
		{"--help on a verb", []string{"update", "--help"}, nil, command{Kind: kindHelp, Topic: "update"}},
		{"-h wins over errors", []string{"create", "-r", "abc", "-bogus", "-h"}, nil, command{Kind: kindHelp, Topic: "create"}},
		{"-h before the verb", []string{"-h", "delete"}, nil, command{Kind: kindHelp, Topic: "delete"}},
		{"-h with an unknown verb is the top help", []string{"frobnicate", "-h"}, nil, command{Kind: kindHelp}},
		{"-h=false is no help", []string{"-h=false", "delete", "S1"}, nil,
			command{Kind: kindDelete, Topic: "delete", Addr: defAddr, Output: outTable, IDs: []string{"S1"}}},
		{"delete several", []string{"delete", "web", "9b2f"}, nil,
			command{Kind: kindDelete, Topic: "delete", Addr: defAddr, Output: outTable, IDs: []string{"web", "9b2f"}}},
		{"-replicas is -r", []string{"update", "-replicas", "2", "web"}, nil,
			command{Kind: kindUpdate, Topic: "update", Addr: defAddr, Output: outTable, ID: "web", N: 2}},
		{"scale", []string{"scale", "web", "3"}, nil,
			command{Kind: kindUpdate, Topic: "scale", Addr: defAddr, Output: outTable, ID: "web", N: 3}},
		{"apply -f", []string{"apply", "-f", "apps.yaml"}, nil,
			command{Kind: kindApply, Topic: "apply", Addr: defAddr, Output: outTable, File: "apps.yaml"}},
		{"logs -f is still a switch", []string{"logs", "-f", "web"}, nil,
			command{Kind: kindLogs, Topic: "logs", Addr: defAddr, Output: outTable, ID: "web", Logs: gdpm.LogsOptions{Follow: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := tt.env
			if getenv == nil {
				getenv = env()
			}
			got, err := parse(tt.args, getenv)
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parse(%q)\n got %+v\nwant %+v", tt.args, got, tt.want)
			}
		})
	}
}

// noNetwork is a connect func for command lines that must fail or finish
// before any request.
func noNetwork(t *testing.T) func(gdpm.ClientConfig) (api, error) {
	return func(gdpm.ClientConfig) (api, error) {
		t.Helper()
		t.Fatal("the command line reached the network")
		return nil, nil
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  func(string) string
		msg  string // in stderr
	}{
		{nil, nil, "missing verb"},
		{[]string{"frobnicate"}, nil, `unknown verb "frobnicate"`},
		{[]string{"-x"}, nil, "unknown flag -x"},
		{[]string{"get", "nodes", "-x"}, nil, "unknown flag -x"},
		{[]string{"get", "nodes", "--x=1"}, nil, "unknown flag --x=1"},
		{[]string{"-h=maybe", "get", "nodes"}, nil, `flag -h takes no value, got "maybe"`},
		{[]string{"get"}, nil, "missing what to get"},
		{[]string{"get", "pods"}, nil, `cannot get "pods"`},
		{[]string{"get", "node"}, nil, "get node: missing node ID (use 'get nodes' to list them)"},
		{[]string{"get", "service"}, nil, "get service: missing service ID"},
		{[]string{"get", "nodes", "N1"}, nil, `get nodes takes no ID, got "N1" (use 'get node ID')`},
		{[]string{"get", "services", "S1"}, nil, "get services takes no ID"},
		{[]string{"get", "service", "S1", "S2"}, nil, "expected one service ID, got 2"},
		{[]string{"get", "node", ""}, nil, "node ID is empty"},
		{[]string{"get", "nodes", "-o", "yaml"}, nil, `-o yaml is for get service and get services`},
		{[]string{"get", "nodes", "-o", "xml"}, nil, `-o must be table, json or yaml, got "xml"`},
		{[]string{"get", "nodes", "-o"}, nil, "flag -o needs a value"},
		{[]string{"get", "nodes", "-r", "2"}, nil, `flag -r does not apply to "get"`},
		{[]string{"get", "nodes", "-addr", "ftp://x"}, nil, `bad -addr: Addr "ftp://x": scheme must be http or https`},
		{[]string{"get", "nodes", "-addr", "http://h:1/?q=1"}, nil, "bad -addr"},
		{[]string{"get", "nodes"}, env("GDPM_ADDR", "http://"), "bad GDPM_ADDR"},
		{[]string{"get", "nodes", "-token", "a\nb"}, nil, "the token (-token or GDPM_TOKEN) contains a control character"},
		{[]string{"get", "nodes", "-ca-hash", "abc"}, nil, "-ca-hash (or GDPM_CA_HASH) must be sha256: and 64 hex digits"},
		{[]string{"update", "S1"}, nil, "missing -r N"},
		{[]string{"update", "-r", "-1", "S1"}, nil, `-r must be a whole number of instances, 0 or more, got "-1"`},
		{[]string{"update", "-r", "abc", "S1"}, nil, `got "abc"`},
		{[]string{"update", "-r", "1.5", "S1"}, nil, `got "1.5"`},
		{[]string{"update", "S1", "-r"}, nil, "flag -r needs a value"},
		{[]string{"update", "-r", "2"}, nil, "missing service ID"},
		{[]string{"update", "-r", "2", "S1", "S2"}, nil, "expected one service ID, got 2"},
		{[]string{"update", "-e", "A=1", "-r", "2", "S1"}, nil, `flag -e does not apply to "update"`},
		{[]string{"delete"}, nil, "missing SERVICE"},
		{[]string{"apply"}, nil, "missing -f FILE"},
		{[]string{"scale", "web"}, nil, "expected SERVICE and N"},
		{[]string{"delete", "-r", "2", "S1"}, nil, `flag -r does not apply to "delete"`},
		{[]string{"create"}, nil, "missing COMMAND"},
		{[]string{"create", "-r", "2", "--"}, nil, "missing COMMAND"},
		{[]string{"create", " "}, nil, "COMMAND is empty"},
		{[]string{"create", "python3", "-u", "app.py"}, nil, `unknown flag -u (put "--" before a command that has words starting with "-")`},
		{[]string{"create", "-r", "-1", "x"}, nil, `got "-1"`},
		{[]string{"create", "-r", "many", "x"}, nil, `got "many"`},
		{[]string{"create", "-e", "NOEQUALS", "x"}, nil, `-e must be KEY=VALUE, got "NOEQUALS"`},
		{[]string{"create", "-e", "=v", "x"}, nil, `-e must be KEY=VALUE, got "=v"`},
		{[]string{"create", "-dir", "srv", "x"}, nil, "-dir must be an absolute path"},
		{[]string{"create", "-restart", "sometimes", "x"}, nil, `-restart must be always, on-failure or never, got "sometimes"`},
		{[]string{"create", "-stop-timeout", "soon", "x"}, nil, "-stop-timeout must be a duration"},
		{[]string{"create", "-stop-timeout", "-1s", "x"}, nil, "-stop-timeout must not be negative"},
		{[]string{"events", "now"}, nil, `unexpected argument "now"`},
		{[]string{"events", "-since", "-1"}, nil, `-since must be an event Revision (a whole number, 0 or more), got "-1"`},
		{[]string{"events", "-since", "x"}, nil, `got "x"`},
		{[]string{"events", "-since"}, nil, "flag -since needs a value"},
		{[]string{"get", "nodes", "-since", "1"}, nil, `flag -since does not apply to "get"`},
		{[]string{"logs"}, nil, "missing service ID"},
		{[]string{"logs", "S1", "S2"}, nil, "expected one service ID, got 2"},
		{[]string{"logs", "-n", "-1", "S1"}, nil, `-n must be a whole number of lines, 0 or more, got "-1"`},
		{[]string{"logs", "-n", "all", "S1"}, nil, `got "all"`},
		{[]string{"logs", "S1", "-n"}, nil, "flag -n needs a value"},
		{[]string{"logs", "-instance", "", "S1"}, nil, "-instance ID is empty"},
		{[]string{"logs", "-f=maybe", "S1"}, nil, `flag -f takes no value, got "maybe"`},
		{[]string{"logs", "-r", "1", "S1"}, nil, `flag -r does not apply to "logs"`},
		{[]string{"events", "-f"}, nil, `flag -f does not apply to "events"`},
		{[]string{"get", "service", "S1", "-instance", "x"}, nil, `flag -instance does not apply to "get"`},
		{[]string{"version", "now"}, nil, `unexpected argument "now"`},
		{[]string{"version", "-r", "1"}, nil, `flag -r does not apply to "version"`},
		{[]string{"help", "frobnicate"}, nil, `no help for "frobnicate"`},
		{[]string{"help", "get", "nodes"}, nil, "too many arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			getenv := tt.env
			if getenv == nil {
				getenv = env()
			}
			var stdout, stderr bytes.Buffer
			code := runWith(t.Context(), tt.args, &stdout, &stderr, getenv, noNetwork(t))
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout should be empty, got %q", stdout.String())
			}
			errText := stderr.String()
			if !strings.HasPrefix(errText, "gdpm-client: ") || !strings.Contains(errText, tt.msg) {
				t.Errorf("stderr does not name the problem %q:\n%s", tt.msg, errText)
			}
			if !strings.Contains(errText, "\nusage: gdpm-client ") || !strings.Contains(errText, " -h' for help.") {
				t.Errorf("stderr lacks the usage line and help hint:\n%s", errText)
			}
		})
	}
}

func TestUsageLineNamesTheVerb(t *testing.T) {
	var stdout, stderr bytes.Buffer
	runWith(t.Context(), []string{"update", "S1", "-r", "x"}, &stdout, &stderr, env(), noNetwork(t))
	want := "gdpm-client: -r must be a whole number of instances, 0 or more, got \"x\"\n" +
		usageLines["update"] + "\nRun 'gdpm-client update -h' for help.\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"--help"}, {"help"},
		{"get", "-h"}, {"get", "node", "-h"}, {"help", "get"},
		{"create", "-h"}, {"create", "python3", "-u", "-h"},
		{"update", "-h"}, {"update", "S1", "-r", "-1", "-help"},
		{"delete", "-h"}, {"completion", "-h"}, {"help", "completion"}, {"logs", "-h"}, {"logs", "S1", "-f", "-h"}, {"help", "logs"}, {"events", "-h"}, {"help", "events"}, {"version", "-h"}, {"help", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runWith(t.Context(), args, &stdout, &stderr, env(), noNetwork(t))
			if code != exitOK {
				t.Errorf("exit %d, want 0", code)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr should be empty, got %q", stderr.String())
			}
			if !strings.Contains(stdout.String(), "Usage:") || !strings.Contains(stdout.String(), "\nExamples:\n  gdpm-client ") {
				t.Errorf("help lacks a usage or an example:\n%s", stdout.String())
			}
		})
	}
	for topic := range usageLines {
		if topic != "help" && !strings.Contains(helpTexts[topic], "\nExamples:\n  gdpm-client ") {
			t.Errorf("no help page with examples for %q", topic)
		}
	}
	for _, topic := range []string{"", "get", "create", "update", "delete", "logs", "events", "version", "completion"} {
		name := "help-" + topic
		if topic == "" {
			name = "help"
		}
		golden(t, name, []byte(helpTexts[topic]))
	}
}

func TestVersion(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"version"}, gdpm.Version + "\n"},
		{[]string{"-o", "json", "version"}, fmt.Sprintf("{\n  \"Version\": %q\n}\n", gdpm.Version)},
	} {
		var stdout, stderr bytes.Buffer
		if code := runWith(t.Context(), tt.args, &stdout, &stderr, env(), noNetwork(t)); code != exitOK {
			t.Errorf("%q: exit %d, stderr %q", tt.args, code, stderr.String())
		}
		if stdout.String() != tt.want {
			t.Errorf("%q: stdout %q, want %q", tt.args, stdout.String(), tt.want)
		}
	}
}

func TestJoinCommand(t *testing.T) {
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"sleep", "60"}, "sleep 60"},
		{[]string{"python3", "/srv/app.py", "--port=8080", "-v"}, "python3 /srv/app.py --port=8080 -v"},
		{[]string{"sh", "-c", "exit 3"}, "sh -c 'exit 3'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"printf", ""}, "printf ''"},
		{[]string{"echo", "$HOME", "*.txt", "a;b", "a|b", "é"}, "echo '$HOME' '*.txt' 'a;b' 'a|b' 'é'"},
		{[]string{"only one word, kept | as is > x"}, "only one word, kept | as is > x"},
	}
	for _, tt := range tests {
		if got := joinCommand(tt.words); got != tt.want {
			t.Errorf("joinCommand(%q) = %q, want %q", tt.words, got, tt.want)
		}
	}
}

func TestCell(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"two\nlines\tand tab":     `two\nlines\tand tab`,
		"\x1b[31mred\x1b[0m":      `\x1b[31mred\x1b[0m`,
		"unicode ✓ stays":         "unicode ✓ stays",
		strings.Repeat("x", 50):   strings.Repeat("x", 50),
		"\u0085next-line control": `\u0085next-line control`,
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := short(strings.Repeat("é", 51)), strings.Repeat("é", 49)+"…"; got != want {
		t.Errorf("short = %q, want %q", got, want)
	}
	if got := short(strings.Repeat("é", 50)); got != strings.Repeat("é", 50) {
		t.Errorf("short cut a 50-character command: %q", got)
	}
}

// --- fixtures, shared by the golden renders and the stub API ---

var (
	t0       = time.Date(2026, 6, 7, 22, 3, 4, 0, time.UTC)
	longCmd  = "python3 -u /srv/very/long/path/to/the/application/main.py --port 8080 --workers 4"
	fixNodes = gdpm.NodeList{
		Ids:        []string{"5764e70d-a8da-4c75-aa44-09dc2dbc188b", "da409d07-f630-4b1d-9844-f8122f9c08d2", "0c1d2e3f-0000-4000-8000-000000000003"},
		ServiceNum: []int{2, 0, 1},
		Status:     []int{gdpm.NodeOnline, gdpm.NodeDraining, 7},
		Times:      []string{"07 Jun 26 22:03 UTC", "07 Jun 26 22:22 UTC", "08 Jun 26 09:00 UTC"},
		Hostnames:  []string{"web-1", "web-2", ""},
		Instances:  []int{5, 0, 1},
		CPU:        []float64{102.5, 0, 3.25},
		RSS:        []int64{300 << 20, 0, 12 << 10},
		Cores:      []int{4, 2, 0},
		MemTotal:   []int64{16 << 30, 8 << 30, 0},
	}
	// Arrays of different lengths must not crash the table.
	fixNodesRagged = gdpm.NodeList{
		Ids:        []string{"n1", "n2"},
		ServiceNum: []int{1},
		Status:     []int{gdpm.NodeOnline},
	}
	fixNode = gdpm.NodeServices{
		Command: []string{"sleep 60", longCmd},
		Ids:     []string{"a11b8ada-1776-490f-a8a4-46c688ffb262", "b22c9beb-2887-4a1f-b9b5-57d799ffc373"},
		Number:  []int{4, 1},
	}
	fixServices = []gdpm.ServiceSummary{
		{ID: "a11b8ada-1776-490f-a8a4-46c688ffb262", Name: "web", Command: "sleep 60", InstanceNum: 4, Running: 4, Restart: gdpm.RestartAlways, CreatedAt: t0,
			RolloutState: gdpm.RolloutState{Status: gdpm.ServiceRunning, Version: "9f1c2e3d4b5a6978", Updated: 4}, ServiceHealth: gdpm.ServiceHealth{CPU: 0.4, RSS: 4 << 20}},
		{ID: "b22c9beb-2887-4a1f-b9b5-57d799ffc373", Command: longCmd, InstanceNum: 3, Running: 1, Pending: 2, Restart: gdpm.RestartOnFailure, CreatedAt: t0.Add(-50 * time.Hour),
			RolloutState: gdpm.RolloutState{Status: gdpm.ServiceCrashLooping, Version: "0a1b2c3d4e5f6071", Updated: 1}, ServiceHealth: gdpm.ServiceHealth{Restarts: 17, CPU: 99.7, RSS: 210 << 20}},
		{ID: "c33daccd-3998-4b2a-8ac6-68e8aa00d484", Command: "printf 'a\\tb\\n'\necho two lines", InstanceNum: 0, Restart: ""},
	}
	fixService = gdpm.ServiceDetail{
		Service: gdpm.Service{
			ID: "b22c9beb-2887-4a1f-b9b5-57d799ffc373",
			Spec: gdpm.Spec{
				Command: longCmd, Env: map[string]string{"PORT": "8080", "MODE": "prod", "GREETING": "hello world"},
				Dir: "/srv", Restart: gdpm.RestartOnFailure, StopTimeout: gdpm.Duration(30 * time.Second),
			},
			InstanceNum: 4, CreatedAt: t0,
		},
		Running: 2, Pending: 1,
		RolloutState: gdpm.RolloutState{Status: gdpm.ServiceUpdating, Version: "0a1b2c3d4e5f6071", Updated: 3},
		Instances: []gdpm.InstanceInfo{
			{ID: "04c18ab53747", Index: 0, Version: "0a1b2c3d4e5f6071", Node: "5764e70d-a8da-4c75-aa44-09dc2dbc188b", State: gdpm.StateRunning, PID: 4242, Restarts: 0, StartedAt: t0.Add(time.Second), Ports: map[string]int{"http": 41001}},
			{ID: "1d29bc64e858", Index: 1, Version: "ffeeddccbbaa9988", Node: "da409d07-f630-4b1d-9844-f8122f9c08d2", State: gdpm.StateRunning, Health: gdpm.HealthHealthy, PID: 31337, Restarts: 3, ExitCode: intp(1), StartedAt: t0.Add(time.Hour), Ports: map[string]int{"http": 41002}, CPU: 12.5, RSS: 150 << 20, LastError: "exit code 1"},
			{ID: "2e3acd75f969", Index: 1, Version: "0a1b2c3d4e5f6071", Node: "5764e70d-a8da-4c75-aa44-09dc2dbc188b", State: gdpm.StateFailed, Restarts: 0, Error: "exec: \"python3\": executable file not found in $PATH"},
			{ID: "3f4bde86a07a", Index: 2, Version: "0a1b2c3d4e5f6071", State: gdpm.StatePending},
		},
	}
	fixServiceBare = gdpm.ServiceDetail{
		Service:   gdpm.Service{ID: "c33daccd-3998-4b2a-8ac6-68e8aa00d484", Spec: gdpm.Spec{Command: "sleep 60"}, CreatedAt: t0},
		Instances: []gdpm.InstanceInfo{},
	}
	fixEvents = []gdpm.Event{
		{Time: t0, Revision: 4, Type: gdpm.EventServiceCreated, Service: fixService.ID, InstanceNum: intp(2), Message: longCmd},
		{Time: t0, Revision: 5, Type: gdpm.EventInstancePlaced, Service: fixService.ID, Instance: "04c18ab53747", Node: fixNodes.Ids[0]},
		{Time: t0.Add(time.Second), Revision: 6, Type: gdpm.EventInstanceStarted, Service: fixService.ID, Instance: "04c18ab53747", Node: fixNodes.Ids[0], PID: 4242},
		{Time: t0.Add(time.Minute), Revision: 8, Type: gdpm.EventInstanceExited, Service: fixService.ID, Instance: "04c18ab53747", Node: fixNodes.Ids[0], PID: 4242, ExitCode: intp(137), Message: "restarting"},
		{Time: t0.Add(time.Minute), Revision: 9, Type: gdpm.EventInstanceRestarted, Service: fixService.ID, Instance: "04c18ab53747", Node: fixNodes.Ids[0], PID: 4250, Restarts: 1},
		{Time: t0.Add(time.Hour), Revision: 12, Type: gdpm.EventNodeLost, Node: fixNodes.Ids[0], Message: "the node's lease was revoked or expired; its instances move to other nodes"},
		{Time: t0.Add(time.Hour), Revision: 13, Type: gdpm.EventServiceScaled, Service: fixService.ID, InstanceNum: intp(0), Message: "from 2 to 0 instances"},
		{Time: t0.Add(time.Hour), Revision: 14, Type: gdpm.EventInstanceFailed, Service: fixService.ID, Instance: "1d29bc64e858", Node: fixNodes.Ids[1], Restarts: 3,
			Message: "exec: \"python3\": executable file not found in $PATH\n\x1b[31m"},
	}
	fixServiceNoErrors = gdpm.ServiceDetail{
		Service: gdpm.Service{ID: "a11b8ada-1776-490f-a8a4-46c688ffb262", Spec: gdpm.Spec{Command: "sleep 60", Restart: gdpm.RestartAlways,
			StopTimeout: gdpm.Duration(gdpm.DefaultStopTimeout)}, InstanceNum: 1, CreatedAt: t0},
		Running:   1,
		Instances: []gdpm.InstanceInfo{{ID: "04c18ab53747", Node: "5764e70d-a8da-4c75-aa44-09dc2dbc188b", State: gdpm.StateRunning, PID: 7, StartedAt: t0}},
	}
)

// golden compares got with testdata/NAME.golden; go test -update rewrites it.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestRender(t *testing.T) {
	utc8 := time.FixedZone("UTC+8", 8*3600)
	tests := []struct {
		name   string
		render func(w *bytes.Buffer) error
	}{
		{"nodes", func(w *bytes.Buffer) error { return renderNodes(w, fixNodes) }},
		{"nodes-ragged", func(w *bytes.Buffer) error { return renderNodes(w, fixNodesRagged) }},
		{"nodes-empty", func(w *bytes.Buffer) error { return renderNodes(w, gdpm.NodeList{}) }},
		{"node", func(w *bytes.Buffer) error { return renderNode(w, fixNode) }},
		{"node-empty", func(w *bytes.Buffer) error { return renderNode(w, gdpm.NodeServices{}) }},
		{"services", func(w *bytes.Buffer) error { return renderServices(w, fixServices, t0.Add(90*time.Minute)) }},
		{"services-empty", func(w *bytes.Buffer) error { return renderServices(w, nil, t0) }},
		{"service", func(w *bytes.Buffer) error { return renderService(w, fixService, time.UTC) }},
		{"service-utc8", func(w *bytes.Buffer) error { return renderService(w, fixServiceNoErrors, utc8) }},
		{"service-no-instances", func(w *bytes.Buffer) error { return renderService(w, fixServiceBare, time.UTC) }},
		{"events", func(w *bytes.Buffer) error {
			renderEventHeader(w)
			for _, ev := range fixEvents {
				if err := renderEvent(w, ev, time.UTC); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.render(&b); err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(b.String(), "\n") {
				if strings.TrimRight(line, " ") != line {
					t.Errorf("line %d has trailing spaces: %q", i+1, line)
				}
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

// stubAPI answers from the fixtures and records the calls; err, when set,
// is every call's answer.
type stubAPI struct {
	calls []string
	err   error
	id    string // CreateService's answer
	req   gdpm.CreateRequest
}

func (s *stubAPI) call(format string, args ...any) error {
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
	return s.err
}

func (s *stubAPI) Nodes(context.Context) (gdpm.NodeList, error) {
	return fixNodes, s.call("Nodes")
}
func (s *stubAPI) Node(_ context.Context, id string) (gdpm.NodeServices, error) {
	return fixNode, s.call("Node %s", id)
}
func (s *stubAPI) Services(context.Context) ([]gdpm.ServiceSummary, error) {
	return fixServices, s.call("Services")
}
func (s *stubAPI) Service(_ context.Context, id string) (gdpm.ServiceDetail, error) {
	return fixService, s.call("Service %s", id)
}
func (s *stubAPI) CreateService(_ context.Context, req gdpm.CreateRequest) (string, error) {
	s.req = req
	return s.id, s.call("CreateService %s", req.Command)
}
func (s *stubAPI) ScaleService(_ context.Context, id string, n int) error {
	return s.call("ScaleService %s %d", id, n)
}
func (s *stubAPI) DeleteService(_ context.Context, id string) error {
	return s.call("DeleteService %s", id)
}
func (s *stubAPI) ApplyService(_ context.Context, spec gdpm.CreateRequest) (gdpm.ApplyResult, error) {
	return gdpm.ApplyResult{ID: s.id, Name: spec.Name, Result: gdpm.ApplyCreated}, s.call("ApplyService %s", spec.Name)
}
func (s *stubAPI) StopService(_ context.Context, id string) error {
	return s.call("StopService %s", id)
}
func (s *stubAPI) StartService(_ context.Context, id string) error {
	return s.call("StartService %s", id)
}
func (s *stubAPI) RestartService(_ context.Context, id string) error {
	return s.call("RestartService %s", id)
}
func (s *stubAPI) Events(_ context.Context, since int64) (*gdpm.EventStream, error) {
	if err := s.call("Events %d", since); err != nil {
		return nil, err
	}
	return nil, errors.New("stubAPI has no event stream: use eventServer")
}
func (s *stubAPI) Logs(_ context.Context, id string, opts gdpm.LogsOptions) (*gdpm.LogStream, error) {
	if err := s.call("Logs %s %+v", id, opts); err != nil {
		return nil, err
	}
	return nil, errors.New("stubAPI has no log stream: use logServer")
}

func runStub(t *testing.T, stub *stubAPI, getenv func(string) string, args ...string) (code int, stdout, stderr string, cfg gdpm.ClientConfig) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runWith(t.Context(), args, &out, &errb, getenv, func(c gdpm.ClientConfig) (api, error) {
		cfg = c
		return stub, nil
	})
	return code, out.String(), errb.String(), cfg
}

func TestExecute(t *testing.T) {
	clock = func() time.Time { return t0.Add(90 * time.Minute) }
	t.Cleanup(func() { clock = time.Now })
	const id = "9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
	tests := []struct {
		args   []string
		call   string
		stdout string // exact, or the golden file name when it starts with "golden:"
	}{
		{[]string{"create", "-r", "2", "--", "sh", "-c", "exit 3"}, "CreateService sh -c 'exit 3'", id + "\n"},
		{[]string{"-o", "json", "create", "x"}, "CreateService x", "{\n  \"ID\": \"" + id + "\"\n}\n"},
		{[]string{"update", id, "-r", "2"}, "ScaleService " + id + " 2", "service " + id + " scaled to 2 instances\n"},
		{[]string{"update", id, "-r", "1"}, "ScaleService " + id + " 1", "service " + id + " scaled to 1 instance\n"},
		{[]string{"update", id, "-r", "0", "-o", "json"}, "ScaleService " + id + " 0", "{\n  \"ID\": \"" + id + "\",\n  \"InstanceNum\": 0\n}\n"},
		{[]string{"delete", id}, "DeleteService " + id, "service " + id + " deleted\n"},
		{[]string{"delete", id, "-o", "json"}, "DeleteService " + id, "{\n  \"Deleted\": true,\n  \"ID\": \"" + id + "\"\n}\n"},
		{[]string{"get", "nodes"}, "Nodes", "golden:nodes"},
		{[]string{"get", "node", "N1"}, "Node N1", "golden:node"},
		{[]string{"get", "services"}, "Services", "golden:services"},
		{[]string{"get", "nodes", "-o", "json"}, "Nodes", "golden:nodes-json"},
		{[]string{"get", "node", "N1", "-o", "json"}, "Node N1", "golden:node-json"},
		{[]string{"get", "services", "-o", "json"}, "Services", "golden:services-json"},
		{[]string{"get", "service", id, "-o", "json"}, "Service " + id, "golden:service-json"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stub := &stubAPI{id: id}
			code, stdout, stderr, cfg := runStub(t, stub, env("GDPM_TOKEN", "tok"), tt.args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if want := []string{tt.call}; !reflect.DeepEqual(stub.calls, want) {
				t.Errorf("calls %q, want %q", stub.calls, want)
			}
			if cfg.Addr != defAddr || cfg.Token != "tok" {
				t.Errorf("client config %+v", cfg)
			}
			if name, ok := strings.CutPrefix(tt.stdout, "golden:"); ok {
				golden(t, name, []byte(stdout))
			} else if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
		})
	}
}

func TestExecuteGetServiceTable(t *testing.T) {
	code, stdout, _, _ := runStub(t, &stubAPI{}, env(), "get", "service", fixService.ID)
	if code != exitOK || !strings.HasPrefix(stdout, "ID:            "+fixService.ID+"\n") ||
		!strings.Contains(stdout, "\nINSTANCE ") {
		t.Errorf("exit %d, stdout:\n%s", code, stdout)
	}
}

func TestCreateSendsTheRequest(t *testing.T) {
	stub := &stubAPI{id: "x"}
	runStub(t, stub, env(), "create", "-r", "3", "-e", "A=1", "-dir", "/srv", "-restart", "never", "-stop-timeout", "20s", "--", "app", "-v")
	want := gdpm.CreateRequest{Command: "app -v", InstanceNum: intp(3), Env: map[string]string{"A": "1"},
		Dir: "/srv", Restart: gdpm.RestartNever, StopTimeout: gdpm.Duration(20 * time.Second)}
	if !reflect.DeepEqual(stub.req, want) {
		t.Errorf("request %+v, want %+v", stub.req, want)
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // stderr
	}{
		{"not found", &gdpm.APIError{StatusCode: http.StatusNotFound, Message: `service "S1": not found`},
			"gdpm-client: service \"S1\": not found (HTTP 404)\n"},
		{"unauthorized", &gdpm.APIError{StatusCode: http.StatusUnauthorized, Message: "missing or wrong token"},
			"gdpm-client: missing or wrong token (HTTP 401); give the cluster token with -token or GDPM_TOKEN\n"},
		{"unavailable", &gdpm.APIError{StatusCode: http.StatusServiceUnavailable, Message: "etcd: context deadline exceeded"},
			"gdpm-client: etcd: context deadline exceeded (HTTP 503)\n"},
		{"network", fmt.Errorf("gdpm: %w", errors.New(`Get "http://127.0.0.1:8989/node/": dial tcp: connection refused`)),
			"gdpm-client: Get \"http://127.0.0.1:8989/node/\": dial tcp: connection refused\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, args := range [][]string{{"get", "nodes"}, {"delete", "S1"}, {"create", "x"}, {"update", "-r", "1", "S1"}, {"logs", "S1"}, {"logs", "-f", "S1"}} {
				code, stdout, stderr, _ := runStub(t, &stubAPI{err: tt.err}, env(), args...)
				if code != exitFailed || stdout != "" || stderr != tt.want {
					t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1, stderr %q", args, code, stdout, stderr, tt.want)
				}
			}
		})
	}
}

func TestAPIErrorSentinels(t *testing.T) {
	for status, want := range map[int]error{
		400: gdpm.ErrBadRequest, 413: gdpm.ErrBadRequest, 401: gdpm.ErrUnauthorized,
		404: gdpm.ErrNotFound, 409: gdpm.ErrConflict, 503: gdpm.ErrUnavailable,
	} {
		err := error(&gdpm.APIError{StatusCode: status, Message: "m"})
		if !errors.Is(err, want) {
			t.Errorf("HTTP %d is not %v", status, want)
		}
	}
	if err := (&gdpm.APIError{StatusCode: 500, Message: "m"}); err.Unwrap() != nil {
		t.Errorf("HTTP 500 unwraps to %v", err.Unwrap())
	}
}

func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	code := runWith(ctx, []string{"get", "nodes"}, &stdout, &stderr, env(), func(gdpm.ClientConfig) (api, error) {
		return &stubAPI{err: fmt.Errorf("gdpm: %w", context.Canceled)}, nil
	})
	if code != exitInterrupted || stderr.String() != "gdpm-client: interrupted\n" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestRealClientIsTheAPI(t *testing.T) {
	// run builds a real client from the parsed config; no request is sent.
	c, err := newAPI(gdpm.ClientConfig{Addr: "master:8989", Token: "t"})
	if err != nil || c == nil {
		t.Fatalf("newAPI: %v", err)
	}
}

// eventServer serves GET /events/ as a master would: the fixture events
// with a heartbeat among them, then the end of the stream. status, when not
// 200, is its answer instead. It records the since it was asked for.
func eventServer(t *testing.T, status int) (url string, since *string) {
	t.Helper()
	since = new(string)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events/" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unexpected request "+r.URL.Path, http.StatusBadRequest)
			return
		}
		*since = r.URL.Query().Get("since")
		if status != http.StatusOK {
			serveError(w, status, "the events after revision 3 are compacted away; start again without since")
			return
		}
		serveNDJSON(w, fixEvents, 2)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, since
}

// serveError answers as a master refusing a request does.
func serveError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// serveNDJSON streams items as a master does: one JSON object a line, each
// flushed, and a heartbeat (an empty line) before items[heartbeat].
func serveNDJSON[T any](w http.ResponseWriter, items []T, heartbeat int) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	for i, item := range items {
		if i == heartbeat {
			io.WriteString(w, "\n")
		}
		json.NewEncoder(w).Encode(item)
		w.(http.Flusher).Flush()
	}
}

func TestEventsVerb(t *testing.T) {
	events := func(t *testing.T, url string, args ...string) (int, string, string) {
		var out bytes.Buffer
		code, stderr := cli(t.Context(), url, &out, args...)
		return code, out.String(), stderr
	}

	t.Run("table", func(t *testing.T) {
		url, since := eventServer(t, http.StatusOK)
		code, stdout, stderr := events(t, url, "events", "-since", "3")
		if *since != "3" {
			t.Errorf("asked for since=%q, want 3", *since)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if len(lines) != 1+len(fixEvents) || !strings.HasPrefix(lines[0], "TIME ") {
			t.Fatalf("want a header and %d lines:\n%s", len(fixEvents), stdout)
		}
		for i, ev := range fixEvents {
			if l := lines[i+1]; !strings.Contains(l, " "+string(ev.Type)+" ") || !strings.Contains(l, " "+strconv.FormatInt(ev.Revision, 10)+" ") {
				t.Errorf("line %d %q does not show %s at %d", i+1, l, ev.Type, ev.Revision)
			}
		}
		// The stream ended without an interrupt: say where to resume.
		if code != exitFailed || !strings.Contains(stderr, "the master ended the stream") || !strings.Contains(stderr, "resume with -since 14") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		url, since := eventServer(t, http.StatusOK)
		_, stdout, _ := events(t, url, "-o", "json", "events")
		if *since != "" {
			t.Errorf("asked for since=%q without -since", *since)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if len(lines) != len(fixEvents) {
			t.Fatalf("want one JSON line per event:\n%s", stdout)
		}
		for i, l := range lines {
			var ev gdpm.Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil || !reflect.DeepEqual(ev, fixEvents[i]) {
				t.Errorf("line %d: %q (%v), want %+v", i, l, err, fixEvents[i])
			}
		}
	})
	t.Run("compacted", func(t *testing.T) {
		url, _ := eventServer(t, http.StatusGone)
		code, stdout, stderr := events(t, url, "events", "-since", "3")
		if code != exitFailed || stdout != "" || !strings.Contains(stderr, "compacted away") || !strings.Contains(stderr, "run without -since") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			json.NewEncoder(w).Encode(fixEvents[0])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}))
		defer srv.Close()
		// The user presses Ctrl-C once the first event is on the screen.
		ctx, cancel := context.WithCancel(t.Context())
		out := &cancelOnWrite{match: string(fixEvents[0].Type), cancel: cancel}
		var errb bytes.Buffer
		code := runWith(ctx, []string{"events"}, out, &errb, env("GDPM_ADDR", srv.URL), realAPI)
		if code != exitInterrupted || strings.Count(out.String(), "\n") != 2 || errb.String() != "gdpm-client: interrupted\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
		}
	})
}

// cancelOnWrite is a buffer that calls cancel once match has been written.
type cancelOnWrite struct {
	bytes.Buffer
	match  string
	cancel context.CancelFunc
}

func (c *cancelOnWrite) Write(b []byte) (int, error) {
	n, err := c.Buffer.Write(b)
	if strings.Contains(c.String(), c.match) {
		c.cancel()
	}
	return n, err
}
