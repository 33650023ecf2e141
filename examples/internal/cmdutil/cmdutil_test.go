package cmdutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func newFlags() (*flag.FlagSet, *LogFlags, *bytes.Buffer) {
	fs := flag.NewFlagSet("gdpm-test", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	return fs, AddLogFlags(fs), &out
}

func TestLogFlags(t *testing.T) {
	tests := []struct {
		args   []string
		level  slog.Level
		format string
	}{
		{nil, slog.LevelInfo, FormatText},
		{[]string{"-log-level", "debug"}, slog.LevelDebug, FormatText},
		{[]string{"-log-level=WARN", "-log-format=json"}, slog.LevelWarn, FormatJSON},
		{[]string{"-log-format", "text", "-log-level", "error"}, slog.LevelError, FormatText},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs, f, _ := newFlags()
			if err := Parse(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			if f.Level != tt.level || f.Format != tt.format {
				t.Errorf("got %v %q, want %v %q", f.Level, f.Format, tt.level, tt.format)
			}
		})
	}
}

func TestBadCommandLines(t *testing.T) {
	tests := []struct {
		args []string
		msg  string // in the output
	}{
		{[]string{"-log-level", "loud"}, `invalid value "loud" for flag -log-level: want debug, info, warn or error`},
		{[]string{"-log-format", "yaml"}, `invalid value "yaml" for flag -log-format: want text or json`},
		{[]string{"-log-format="}, `invalid value "" for flag -log-format`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"extra"}, `gdpm-test: unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs, _, out := newFlags()
			err := Parse(fs, tt.args)
			if err == nil {
				t.Fatal("no error")
			}
			if code := ExitStatus(out, "gdpm-test", err); code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(out.String(), tt.msg) {
				t.Errorf("output lacks %q:\n%s", tt.msg, out)
			}
			// Exactly one message: the flag package's, or ExitStatus's.
			if n := strings.Count(out.String(), strings.TrimPrefix(tt.msg, "gdpm-test: ")); n != 1 {
				t.Errorf("the message is printed %d times:\n%s", n, out)
			}
		})
	}
}

func TestHelpPrintsTheDefaults(t *testing.T) {
	fs, _, out := newFlags()
	err := Parse(fs, []string{"-h"})
	if !errors.Is(err, flag.ErrHelp) || ExitStatus(io.Discard, "gdpm-test", err) != ExitOK {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-log-level level", "(default info)", "-log-format format", "(default text)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		err  error
		code int
		out  string
	}{
		{nil, ExitOK, ""},
		{flag.ErrHelp, ExitOK, ""},
		{Usagef("-a cannot be combined with -b"), ExitUsage, "gdpm-test: -a cannot be combined with -b\nRun 'gdpm-test -h' for help.\n"},
		{errors.New("etcd: no route"), ExitFailed, "gdpm-test: etcd: no route\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if code := ExitStatus(&out, "gdpm-test", tt.err); code != tt.code || out.String() != tt.out {
			t.Errorf("%v: exit %d, output %q; want %d, %q", tt.err, code, out.String(), tt.code, tt.out)
		}
	}
}

func TestJSONLogger(t *testing.T) {
	fs, f, _ := newFlags()
	if err := Parse(fs, []string{"-log-format", "json", "-log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := f.Logger(&out)
	log.Info("hidden at warn")
	log.Warn("slave lost", "node", "n1")
	Notice(log, "serving", "api", "http://127.0.0.1:8989")

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got:\n%s", out.String())
	}
	want := []map[string]string{
		{"level": "WARN", "msg": "slave lost", "node": "n1"},
		{"level": "INFO", "msg": "serving", "api": "http://127.0.0.1:8989"},
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %q: %v", i+1, line, err)
		}
		if _, ok := rec["time"]; !ok {
			t.Errorf("line %d has no time: %q", i+1, line)
		}
		for k, v := range want[i] {
			if rec[k] != v {
				t.Errorf("line %d: %s = %v, want %q", i+1, k, rec[k], v)
			}
		}
	}
}

func TestTextLogger(t *testing.T) {
	fs, f, _ := newFlags()
	if err := Parse(fs, []string{"-log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	f.Logger(&out).Debug("lease renewed", "node", "n1")
	if s := out.String(); !strings.Contains(s, `level=DEBUG msg="lease renewed" node=n1`) || strings.HasPrefix(s, "{") {
		t.Errorf("text log line: %q", s)
	}
}
