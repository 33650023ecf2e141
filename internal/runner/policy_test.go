package runner

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestCommandArgv(t *testing.T) {
	sh := func(c string) []string { return []string{"/bin/sh", "-c", c} }
	tests := []struct {
		cmd  string
		want []string
	}{
		{"sleep 100", []string{"sleep", "100"}},
		{"  /usr/bin/env   -i\tfoo  ", []string{"/usr/bin/env", "-i", "foo"}},
		{"prog --flag-x ./rel/path a.b,c:d@e+f", []string{"prog", "--flag-x", "./rel/path", "a.b,c:d@e+f"}},
		{"", nil},
		{"sleep 100 & sleep 100", sh("sleep 100 & sleep 100")},
		{"a | b", sh("a | b")},
		{"a; b", sh("a; b")},
		{"a > out", sh("a > out")},
		{"a < in", sh("a < in")},
		{"(a)", sh("(a)")},
		{"echo $HOME", sh("echo $HOME")},
		{"echo `id`", sh("echo `id`")},
		{`echo a\ b`, sh(`echo a\ b`)},
		{`echo "a b"`, sh(`echo "a b"`)},
		{"echo 'a b'", sh("echo 'a b'")},
		{"ls *.go", sh("ls *.go")},
		{"ls ?.go", sh("ls ?.go")},
		{"ls [ab].go", sh("ls [ab].go")},
		{"prog # comment", sh("prog # comment")},
		{"ls ~", sh("ls ~")},
		{"FOO=bar prog", sh("FOO=bar prog")},
		{"echo {a,b}", sh("echo {a,b}")},
		{"prog 100%", sh("prog 100%")},
		{"! prog", sh("! prog")},
		{"a\nb", sh("a\nb")},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.cmd), func(t *testing.T) {
			if got := CommandArgv(tt.cmd); !slices.Equal(got, tt.want) {
				t.Errorf("CommandArgv(%q) = %q, want %q", tt.cmd, got, tt.want)
			}
		})
	}
}

func TestBackoffDelays(t *testing.T) {
	cfg := Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Reset: time.Second}.withDefaults()
	var b restartDelay
	var got []time.Duration
	for range 5 {
		got = append(got, b.delay(cfg, 0))
	}
	got = append(got, b.delay(cfg, time.Second), b.delay(cfg, 999*time.Millisecond))
	ms := time.Millisecond
	want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms, 10 * ms, 20 * ms}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	if d := (Backoff{}).withDefaults(); d.Initial != 25*ms || d.Max != 30*time.Second || d.Reset != 10*time.Second {
		t.Errorf("defaults %+v", d)
	}
}

func TestRestartLimitWindow(t *testing.T) {
	l := newRestartLimit(2, time.Minute)
	t0 := time.Now()
	for i, tc := range []struct {
		at    time.Duration
		allow bool
	}{{0, true}, {time.Second, true}, {2 * time.Second, false}, {59 * time.Second, false},
		{60500 * time.Millisecond, true}, {60800 * time.Millisecond, false}, {200 * time.Second, true}} {
		if got := l.allow(t0.Add(tc.at)); got != tc.allow {
			t.Errorf("restart %d at %v: allow = %v, want %v", i, tc.at, got, tc.allow)
		}
	}
	if unlimited := newRestartLimit(0, 0); !unlimited.allow(t0) || unlimited.window != DefaultRestartWindow {
		t.Errorf("MaxRestarts 0: %+v", unlimited)
	}
}

func TestExitText(t *testing.T) {
	for _, tc := range []struct {
		code int
		err  string
		want string
	}{{3, "", "exit code 3"}, {137, "", "killed by signal 9"}, {137, "oom", "oom"}, {0, "", "exit code 0"}} {
		if got := exitText(tc.code, tc.err); got != tc.want {
			t.Errorf("exitText(%d, %q) = %q, want %q", tc.code, tc.err, got, tc.want)
		}
	}
}

func TestEnviron(t *testing.T) {
	base := make([]string, 2, 10) // room to grow: appending in place would write into it
	base[0], base[1] = "A=1", "B=2"
	e1 := environ(base, []string{"C=3"})
	e2 := environ(base, []string{"D=4", "A=5", "D=6"})
	if !slices.Equal(e1, []string{"A=1", "B=2", "C=3"}) || !slices.Equal(e2, []string{"A=5", "B=2", "D=6"}) {
		t.Errorf("environ: %q and %q", e1, e2)
	}
	if !slices.Equal(base[:2], []string{"A=1", "B=2"}) {
		t.Errorf("base changed: %q", base[:2])
	}
	if got := envLookup([]string{"X=1", "Y=2", "X=3"})("X"); got != "3" {
		t.Errorf("envLookup X = %q, want the last, 3", got)
	}
}
