package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// beMainVar, set to 1, makes the test binary run as gdpm-client itself:
// the completion scripts call the program they complete.
const beMainVar = "GDPM_CLIENT_TEST_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMainVar) == "1" {
		main() // exits
	}
	os.Exit(testkit.Main(m, nil))
}

// completions runs "gdpm-client __complete WORD..." against stub and
// returns the candidates without their descriptions.
func completions(t *testing.T, stub *stubAPI, getenv func(string) string, words ...string) []string {
	t.Helper()
	code, out, errs, _ := runStub(t, stub, getenv, append([]string{completeVerb}, words...)...)
	if code != exitOK || errs != "" {
		t.Fatalf("__complete %q: exit %d, stderr %q", words, code, errs)
	}
	var got []string
	for line := range strings.Lines(out) {
		v, _, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		got = append(got, v)
	}
	return got
}

func TestCompleteWords(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  []string
		none  []string // must not be offered
	}{
		{words: []string{""}, want: verbs},
		{words: []string{"up"}, want: []string{"update"}},
		{words: []string{"-o", "json", "ge"}, want: []string{"get"}},
		{words: []string{"get", ""}, want: []string{"nodes", "node", "services", "service"}},
		{words: []string{"get", "se"}, want: []string{"services", "service"}},
		{words: []string{"get", "service", ""}, want: []string{fixServices[0].ID, fixServices[1].ID}},
		{words: []string{"get", "node", ""}, want: fixNodes.Ids},
		{words: []string{"delete", fixServices[0].ID[:3]}, want: []string{fixServices[0].ID}},
		{words: []string{"logs", "-f", ""}, want: []string{fixServices[0].ID, fixServices[1].ID}},
		{words: []string{"update", "-r", ""}, want: nil},
		{words: []string{"get", "-"}, want: []string{"-w", "-o", "-addr", "-token", "-h"}, none: []string{"-r", "-f"}},
		{words: []string{"logs", "-"}, want: []string{"-f", "-n", "-instance"}, none: []string{"-w", "-r"}},
		{words: []string{"get", "-o", ""}, want: []string{"table", "json"}},
		{words: []string{"create", "-restart", "on"}, want: []string{"on-failure"}},
		{words: []string{"create", "--", "sle"}, want: nil},
		{words: []string{"completion", ""}, want: shells},
		{words: []string{"help", "ev"}, want: []string{"events"}},
	} {
		t.Run(strings.Join(tc.words, " "), func(t *testing.T) {
			got := completions(t, &stubAPI{}, env(), tc.words...)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("got %q, want %q among them", got, w)
				}
			}
			if tc.want == nil && len(got) > 0 {
				t.Errorf("got %q, want nothing", got)
			}
			for _, w := range tc.none {
				if slices.Contains(got, w) {
					t.Errorf("got %q, want no %q", got, w)
				}
			}
		})
	}
	// Ids come from the master the line names; an unreachable master
	// means no ids, not an error.
	var cfg gdpm.ClientConfig
	stub := &stubAPI{err: gdpm.ErrUnavailable}
	code := runWith(t.Context(), []string{completeVerb, "-addr", "h:1", "-token", "t", "delete", ""}, &bytes.Buffer{}, &bytes.Buffer{}, env(),
		func(c gdpm.ClientConfig) (api, error) { cfg = c; return stub, nil })
	if code != exitOK || cfg.Addr != "h:1" || cfg.Token != "t" {
		t.Errorf("exit %d, connected with %+v; want 0 and the line's -addr and -token", code, cfg)
	}
	// A secured master: the CA pin comes from the line, or the environment.
	pin := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		args   []string
		getenv func(string) string
	}{
		{[]string{completeVerb, "-ca-hash", pin, "get", "service", ""}, env()},
		{[]string{completeVerb, "-ca-hash=" + pin, "delete", ""}, env()},
		{[]string{completeVerb, "logs", ""}, env("GDPM_CA_HASH", pin)},
	} {
		cfg = gdpm.ClientConfig{}
		runWith(t.Context(), tc.args, &bytes.Buffer{}, &bytes.Buffer{}, tc.getenv,
			func(c gdpm.ClientConfig) (api, error) { cfg = c; return stub, nil })
		if cfg.CAHash != pin {
			t.Errorf("%q: connected with CAHash %q, want %q", tc.args, cfg.CAHash, pin)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range shells {
		t.Run(shell, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runWith(t.Context(), []string{"completion", shell}, &out, &errb, env(), noNetwork(t)); code != exitOK || out.Len() == 0 {
				t.Fatalf("completion %s: exit %d, stderr %q", shell, code, errb.String())
			}
			path := filepath.Join(t.TempDir(), "gdpm-client."+shell)
			if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			bin, err := exec.LookPath(shell)
			if err != nil {
				if shell == "bash" {
					t.Fatal(err)
				}
				t.Skipf("%s is not installed", shell)
			}
			if b, err := exec.Command(bin, "-n", path).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, b)
			}
		})
	}
	var errb bytes.Buffer
	if code := runWith(t.Context(), []string{"completion", "tcsh"}, &bytes.Buffer{}, &errb, env(), noNetwork(t)); code != exitUsage {
		t.Errorf("completion tcsh: exit %d, stderr %q; want 2", code, errb.String())
	}
}

// bashComplete sources the bash script, sets COMP_WORDS to the line and
// calls the completion function as bash does on Tab; it returns COMPREPLY.
// The test binary stands in for gdpm-client.
func bashComplete(t *testing.T, environ []string, line ...string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "gdpm-client.bash")
	if err := os.WriteFile(script, []byte(completionScript("bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	words := append([]string{self}, line...)
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", `source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
_gdpm_client
printf '%s\n' "${COMPREPLY[@]}"`, "bash", script)
	cmd.Args = append(cmd.Args, words...)
	cmd.Env = append(os.Environ(), beMainVar+"=1")
	cmd.Env = append(cmd.Env, environ...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("bash completion of %q: %v\n%s", line, err, stderr.String())
	}
	return strings.Fields(string(out))
}

func TestBashCompletesAVerb(t *testing.T) {
	if got := bashComplete(t, nil, "up"); !slices.Equal(got, []string{"update"}) {
		t.Errorf("gdpm-client up<Tab>: %q, want [update]", got)
	}
	if got := bashComplete(t, nil, "get", "-o", "j"); !slices.Equal(got, []string{"json"}) {
		t.Errorf("gdpm-client get -o j<Tab>: %q, want [json]", got)
	}
}

// TestBashCompletesServiceIDs asks a real master for the ids.
func TestBashCompletesServiceIDs(t *testing.T) {
	addr := startCluster(t, "tok")
	c, err := gdpm.NewClient(gdpm.ClientConfig{Addr: addr, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	id, err := c.CreateService(context.Background(), gdpm.CreateRequest{Command: "sleep 1000", InstanceNum: &zero})
	if err != nil {
		t.Fatal(err)
	}
	environ := []string{"GDPM_ADDR=" + addr, "GDPM_TOKEN=tok"}
	if got := bashComplete(t, environ, "delete", ""); !slices.Equal(got, []string{id}) {
		t.Errorf("gdpm-client delete <Tab>: %q, want [%s]", got, id)
	}
	if got := bashComplete(t, environ, "get", "service", id[:4]); !slices.Equal(got, []string{id}) {
		t.Errorf("gdpm-client get service %s<Tab>: %q, want [%s]", id[:4], got, id)
	}
	// A wrong token: no ids, and nothing on the terminal.
	if got := bashComplete(t, []string{"GDPM_ADDR=" + addr, "GDPM_TOKEN=wrong"}, "delete", ""); len(got) != 0 {
		t.Errorf("with a wrong token: %q, want nothing", got)
	}
}
