package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/capy-pl/gdpm"
	"github.com/google/uuid"
	"sigs.k8s.io/yaml"
)

// stdin is what "apply -f -" and "diff -f -" read.
var stdin io.Reader = os.Stdin

// minPrefix is the shortest id prefix that names a service.
const minPrefix = 4

// resolve turns what the user typed for a service into what the API
// takes: a whole id as it is (no extra request); otherwise the id of the
// service with that name, or of the one service whose id starts with it
// (4 characters or more). Two services matching a prefix is an error that
// lists them. Anything else goes to the API as it is, which answers 404.
func resolve(ctx context.Context, c api, ref string) (string, error) {
	if _, err := uuid.Parse(ref); err == nil && len(ref) == 36 {
		return ref, nil
	}
	list, err := c.Services(ctx)
	if err != nil {
		return "", err
	}
	var matches []gdpm.ServiceSummary
	for _, s := range list {
		if s.Name == ref || s.ID == ref {
			return s.ID, nil
		}
		if len(ref) >= minPrefix && strings.HasPrefix(s.ID, ref) {
			matches = append(matches, s)
		}
	}
	switch len(matches) {
	case 0:
		if len(ref) < minPrefix && !isName(ref, list) {
			return "", fmt.Errorf("service %q: not found (an id prefix needs %d characters or more)", ref, minPrefix)
		}
		return ref, nil
	case 1:
		return matches[0].ID, nil
	}
	var b strings.Builder
	for _, s := range matches {
		fmt.Fprintf(&b, "\n  %s  %s", s.ID, orDash(s.Name))
	}
	return "", fmt.Errorf("%q is ambiguous: the ids of %d services start with it; give more characters or the name:%s", ref, len(matches), b.String())
}

func isName(ref string, list []gdpm.ServiceSummary) bool {
	for _, s := range list {
		if s.Name == ref {
			return true
		}
	}
	return false
}

// readSpecFile reads -f FILE ("-": standard input) as a spec file.
func readSpecFile(file string) ([]gdpm.CreateRequest, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	specs, err := gdpm.ParseSpecFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimSuffix(strings.TrimPrefix(err.Error(), "gdpm: "), ": bad request"))
	}
	return specs, nil
}

// apply sends every service of the file, in order, and says what each
// became: created, updated (a rollout follows) or unchanged.
func apply(ctx context.Context, c api, cmd command, w io.Writer) error {
	specs, err := readSpecFile(cmd.File)
	if err != nil {
		return err
	}
	var results []gdpm.ApplyResult
	for _, s := range specs {
		res, err := c.ApplyService(ctx, s)
		if err != nil {
			return fmt.Errorf("service %q: %w", s.Name, err)
		}
		results = append(results, res)
		if cmd.Output != outJSON {
			if _, err := fmt.Fprintf(w, "service %s %s\n", res.Name, res.Result); err != nil {
				return err
			}
		}
	}
	if cmd.Output == outJSON {
		return writeJSON(w, results)
	}
	return nil
}

// diff prints, for every service of the file, what apply would change:
// the lines of its spec as it stands ("-") and as the file has it ("+").
func diff(ctx context.Context, c api, cmd command, w io.Writer) error {
	specs, err := readSpecFile(cmd.File)
	if err != nil {
		return err
	}
	changes := 0
	for _, want := range specs {
		wantY, err := gdpm.MarshalSpecFile(normalize(want))
		if err != nil {
			return err
		}
		d, err := c.Service(ctx, want.Name)
		var apiErr *gdpm.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
			changes++
			fmt.Fprintf(w, "+ service %s (created by apply)\n", want.Name)
			for _, l := range lines(wantY) {
				fmt.Fprintf(w, "+   %s\n", l)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("service %q: %w", want.Name, err)
		}
		haveY, err := gdpm.MarshalSpecFile(gdpm.SpecOf(d.Service))
		if err != nil {
			return err
		}
		if bytes.Equal(haveY, wantY) {
			continue
		}
		changes++
		fmt.Fprintf(w, "~ service %s (updated by apply)\n", want.Name)
		for _, l := range lineDiff(lines(haveY), lines(wantY)) {
			fmt.Fprintf(w, "%s\n", l)
		}
	}
	if changes == 0 {
		_, err := fmt.Fprintln(w, "no changes")
		return err
	}
	return errDiffers
}

// errDiffers is diff's answer when apply would change something: exit 1
// and no message, as diff(1) and kubectl diff, so a script can ask.
var errDiffers = errors.New("differences found")

// normalize spells out a spec file entry's defaults, as the master stores
// and shows them, so that diff compares like with like.
func normalize(r gdpm.CreateRequest) gdpm.CreateRequest {
	n := 1
	if r.InstanceNum != nil {
		n = *r.InstanceNum
	}
	return gdpm.SpecOf(gdpm.Service{
		Name: r.Name, InstanceNum: n, Rollout: r.Rollout,
		Spec: gdpm.Spec{Command: strings.TrimSpace(r.Command), Env: r.Env, Dir: r.Dir, Restart: r.Restart, StopTimeout: r.StopTimeout, Ports: r.Ports},
	})
}

func lines(b []byte) []string {
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// lineDiff is a small longest-common-subsequence diff: "    " before a line
// both have, "-   " before one only a has, "+   " before one only b has.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, "    "+a[i])
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "-   "+a[i])
			i++
		default:
			out = append(out, "+   "+b[j])
			j++
		}
	}
	return out
}

// lifecycle runs stop, start, restart or delete on each service named.
func lifecycle(ctx context.Context, c api, cmd command, w io.Writer) error {
	verbs := map[kind]struct {
		do   func(context.Context, string) error
		done string
	}{
		kindStop:    {c.StopService, "stopped"},
		kindStart:   {c.StartService, "started"},
		kindRestart: {c.RestartService, "restarting (rolling)"},
		kindDelete:  {c.DeleteService, "deleted"},
	}
	v := verbs[cmd.Kind]
	var done []map[string]any
	for _, ref := range cmd.IDs {
		id, err := resolve(ctx, c, ref)
		if err != nil {
			return err
		}
		if err := v.do(ctx, id); err != nil {
			return err
		}
		if cmd.Output == outJSON {
			entry := map[string]any{"ID": id}
			if cmd.Kind == kindDelete {
				entry["Deleted"] = true
			}
			done = append(done, entry)
			continue
		}
		name := id
		if ref != id && !strings.HasPrefix(id, ref) {
			name = ref // the user's name for it
		}
		if _, err := fmt.Fprintf(w, "service %s %s\n", cell(name), v.done); err != nil {
			return err
		}
	}
	if cmd.Output == outJSON {
		if len(done) == 1 {
			return writeJSON(w, done[0])
		}
		return writeJSON(w, done)
	}
	return nil
}

// writeSpecs prints the named services of list as one spec file; a
// service without a name cannot be applied and is left out, with a note.
func writeSpecs(ctx context.Context, c api, list []gdpm.ServiceSummary, w io.Writer) error {
	var specs []gdpm.CreateRequest
	skipped := 0
	for _, s := range list {
		if s.Name == "" {
			skipped++
			continue
		}
		d, err := c.Service(ctx, s.ID)
		if err != nil {
			return err
		}
		specs = append(specs, gdpm.SpecOf(d.Service))
	}
	if skipped > 0 {
		fmt.Fprintf(w, "# %d %s without a name left out: apply needs names\n", skipped, plural(skipped, "service"))
	}
	if len(specs) == 0 {
		return nil
	}
	b, err := yaml.Marshal(specs) // always a list, even of one
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
