package gdpm

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// FuzzParseSpecFile: a spec file is refused with ErrBadRequest or gives
// services that each have a distinct name; what MarshalSpecFile writes
// from them reads back the same.
func FuzzParseSpecFile(f *testing.F) {
	for _, s := range []string{
		"- Name: web\n  Command: sleep 1\n  InstanceNum: 2\n  Env: {A: \"1\"}\n  Ports: [http]\n",
		"Name: one\nCommand: 'sh -c \"echo hi\"'\nRollout: {MinReady: 2s, MaxUnavailable: 1}\n",
		`[{"Name":"a","Command":"x"},{"Name":"b","Command":"y","StopTimeout":"10s"}]`,
		"- Name: a\n  Command: x\n- Name: a\n  Command: y\n",
		"- Command: x\n",
		"- Name: a\n  Comand: x\n",
		"Name: a\nCommand: x # a comment\n",
		"",
		"42",
		"- Name: a\n  InstanceNum: 1e3\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := ParseSpecFile(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not ErrBadRequest", err)
			}
			return
		}
		names := map[string]bool{}
		for _, s := range specs {
			if s.Name == "" || names[s.Name] {
				t.Fatalf("accepted an empty or repeated name %q", s.Name)
			}
			names[s.Name] = true
		}
		out, err := MarshalSpecFile(specs...)
		if err != nil {
			t.Fatalf("cannot write back %+v: %v", specs, err)
		}
		again, err := ParseSpecFile(out)
		if err != nil {
			t.Fatalf("what MarshalSpecFile wrote does not read back: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(specs, again) {
			t.Fatalf("round trip changed the specs:\n%+v\n%+v\n%s", specs, again, out)
		}
	})
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// FuzzCheckName: an accepted name is what the README promises, and never
// a UUID (a route takes an id or a name in the same place).
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"web", "a", "-x", "Web", "9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c", "a_b", "ä", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := checkName(name)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not ErrBadRequest", err)
			}
			return
		}
		if !nameRE.MatchString(name) {
			t.Fatalf("accepted %q", name)
		}
		if _, err := uuid.Parse(name); err == nil {
			t.Fatalf("accepted a UUID %q", name)
		}
	})
}

// A spec file is read as strictly as a create body: a key in the wrong
// case is refused, not matched (JSON's own decoder would match "NAme"),
// and an empty Env reads back the same after a round trip (both found
// by FuzzParseSpecFile).
func TestParseSpecFileKeysExactAndEmptyEnvStable(t *testing.T) {
	for _, doc := range []string{"NAme: a\nCommand: sleep 1\n", "- Name: a\n  command: sleep 1\n"} {
		if _, err := ParseSpecFile([]byte(doc)); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "case-sensitive") {
			t.Errorf("%q: %v, want a refusal naming the case", doc, err)
		}
	}
	specs, err := ParseSpecFile([]byte("Name: a\nCommand: sleep 1\nEnv: {}\n"))
	if err != nil || specs[0].Env != nil {
		t.Fatalf("Env {} read as %#v, %v; want nil", specs, err)
	}
}
