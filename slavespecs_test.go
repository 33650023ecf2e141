package gdpm

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// The slave reads an assignment's spec at the revision it names; once that
// history is compacted away, from the latest record (specs do not change
// once created); not at all once the service is gone.
func TestSpecCacheReadsTheNamedRevision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := StartEmbeddedEtcd(ctx, EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli, err := newEtcdClient(e.Endpoints(), 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	k := newKeyspace("")
	put := func(cmd string) int64 {
		v, _ := json.Marshal(Service{ID: "svc", Spec: Spec{Command: cmd}, InstanceNum: 1})
		resp, err := cli.Put(ctx, k.service("svc"), string(v))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	rev1 := put("sleep 1")
	rev2 := put("sleep 2")
	c := newSpecCache(cli, k, 5*time.Second, discardLogger())
	desired := map[string]Assignment{
		"svc/a":  {Service: "svc", Instance: "a", SpecRev: rev1},
		"svc/b":  {Service: "svc", Instance: "b", SpecRev: rev2},
		"svc/c":  {Service: "svc", Instance: "c", Spec: Spec{Command: "inline"}},
		"gone/d": {Service: "gone", Instance: "d", SpecRev: rev1},
	}
	if err := c.resolve(ctx, desired); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"svc/a": "sleep 1", "svc/b": "sleep 2", "svc/c": "inline"} {
		if a := desired[key]; !a.resolved || a.Spec.Command != want {
			t.Errorf("%s: resolved %v, command %q; want %q", key, a.resolved, a.Spec.Command, want)
		}
	}
	if desired["gone/d"].resolved {
		t.Error("an assignment of a service that does not exist is resolved")
	}
	if len(c.specs) != 2 {
		t.Errorf("%d specs cached, want 2 (one per service and revision)", len(c.specs))
	}

	// Compacted: the latest record answers.
	if _, err := cli.Compact(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	c = newSpecCache(cli, k, 5*time.Second, discardLogger())
	desired = map[string]Assignment{"svc/a": {Service: "svc", Instance: "a", SpecRev: rev1}}
	if err := c.resolve(ctx, desired); err != nil {
		t.Fatal(err)
	}
	if a := desired["svc/a"]; !a.resolved || a.Spec.Command != "sleep 2" {
		t.Errorf("after compaction: resolved %v, command %q", a.resolved, a.Spec.Command)
	}
}
