package gdpm

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// planFixture is a scheduler whose view holds one service "svc" on two
// online nodes, for plan() alone: no etcd.
type planFixture struct {
	s   *scheduler
	now time.Time
	svc Service
}

func newPlanFixture(n int, spec string) *planFixture {
	k := newKeyspace("")
	s := &scheduler{k: k, log: discardLogger(), view: newClusterView(k),
		rolling: map[string]bool{}, statuses: map[string]map[string]InstanceStatus{}, runningSince: map[string]map[string]time.Time{}}
	for _, id := range []string{"n1", "n2"} {
		s.view.nodes[id] = Node{ID: id, Status: NodeOnline}
	}
	s.view.sortNodes()
	f := &planFixture{s: s, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	f.set(Service{ID: "svc", Spec: Spec{Command: spec}, InstanceNum: n, Rollout: RolloutPolicy{MinReady: Duration(time.Second)}})
	return f
}

func (f *planFixture) set(svc Service) {
	f.svc = svc
	f.s.view.services["svc"] = serviceEntry{Service: svc, modRev: 10, version: svc.version()}
}

// place puts an instance in the view, placed a minute ago, with the status
// its node reports (none when state is "").
func (f *planFixture) place(inst, node string, index int, version string, state InstanceState, restarts int) {
	f.s.view.setInstance("svc", inst, placement{node: node, index: index, version: version, placedAt: f.now.Add(-time.Minute)}, false)
	if f.s.statuses["svc"] == nil {
		f.s.statuses["svc"] = map[string]InstanceStatus{}
	}
	if state != "" {
		f.s.statuses["svc"][inst] = InstanceStatus{Service: "svc", Instance: inst, Node: node, State: state, Restarts: restarts}
	}
}

// plan returns the plan as "-inst" for a removal, "+index@version" for a
// new instance, "halt" for a halt record and "move inst" for a move.
func (f *planFixture) plan() []string {
	var out []string
	for _, u := range f.s.plan("svc", f.now, nil) {
		switch {
		case strings.Contains(u.put, "rollout/"):
			out = append(out, "halt")
		case u.put != "" && u.del != "":
			out = append(out, "move "+u.put[strings.LastIndex(u.put, "/")+1:])
		case u.put != "":
			var a Assignment
			json.Unmarshal([]byte(u.val), &a)
			v := "cur"
			if a.Version != f.s.view.services["svc"].version {
				v = a.Version
			}
			out = append(out, "+"+itoa(a.Index)+"@"+v)
		case u.del != "":
			out = append(out, "-"+u.del[strings.LastIndex(u.del, "/")+1:])
		}
	}
	slices.Sort(out)
	return out
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestPlanIndicesAndRollouts(t *testing.T) {
	old := Service{Spec: Spec{Command: "v1"}}.version()
	check := func(t *testing.T, f *planFixture, want ...string) {
		t.Helper()
		if got := f.plan(); !slices.Equal(got, want) {
			t.Errorf("plan %q, want %q", got, want)
		}
	}
	t.Run("steady", func(t *testing.T) {
		f := newPlanFixture(2, "v1")
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 1, old, StateRunning, 0)
		check(t, f)
	})
	t.Run("scale down removes the highest index", func(t *testing.T) {
		f := newPlanFixture(1, "v1")
		f.place("a", "n1", 1, old, StateRunning, 0)
		f.place("b", "n2", 0, old, StateRunning, 0)
		check(t, f, "-a")
	})
	t.Run("scale up fills the free indices", func(t *testing.T) {
		f := newPlanFixture(3, "v1")
		f.place("a", "n1", 1, old, StateRunning, 0)
		check(t, f, "+0@cur", "+2@cur")
	})
	t.Run("a second instance of an index goes", func(t *testing.T) {
		f := newPlanFixture(1, "v1")
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 0, old, StateRunning, 0)
		check(t, f, "-b")
	})
	t.Run("stopped removes all", func(t *testing.T) {
		f := newPlanFixture(2, "v1")
		svc := f.svc
		svc.Stopped = true
		f.set(svc)
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 1, old, StateRunning, 0)
		check(t, f, "-a", "-b")
	})
	t.Run("a new version starts one index beside the old", func(t *testing.T) {
		f := newPlanFixture(3, "v2")
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 1, old, StateRunning, 0)
		f.place("c", "n1", 2, old, StateRunning, 0)
		check(t, f, "+0@cur")
		if !f.s.rolling["svc"] {
			t.Error("not marked rolling")
		}
	})
	t.Run("MaxUnavailable 2 starts two", func(t *testing.T) {
		f := newPlanFixture(3, "v2")
		svc := f.svc
		svc.Rollout.MaxUnavailable = 2
		f.set(svc)
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 1, old, StateRunning, 0)
		f.place("c", "n1", 2, old, StateRunning, 0)
		check(t, f, "+0@cur", "+1@cur")
	})
	t.Run("the old one goes once the new one ran MinReady", func(t *testing.T) {
		f := newPlanFixture(2, "v2")
		cur := f.svc.version()
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 1, old, StateRunning, 0)
		f.place("x", "n2", 0, cur, StateRunning, 0)
		check(t, f) // first seen running now: wait
		f.now = f.now.Add(1500 * time.Millisecond)
		check(t, f, "+1@cur", "-a")
	})
	t.Run("a new instance that exits halts the rollout", func(t *testing.T) {
		f := newPlanFixture(2, "v2")
		cur := f.svc.version()
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 1, old, StateRunning, 0)
		f.place("x", "n2", 0, cur, StateBackoff, 1)
		check(t, f, "-x", "halt")
		f.s.view.halts["svc"] = rolloutHalt{Version: cur}
		delete(f.s.view.instances["svc"], "x")
		check(t, f) // halted: the old ones are left alone
	})
	t.Run("a new instance not ready within ReadyTimeout halts it", func(t *testing.T) {
		f := newPlanFixture(1, "v2")
		svc := f.svc
		svc.Rollout.ReadyTimeout = Duration(30 * time.Second)
		f.set(svc)
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("x", "n2", 0, svc.version(), "", 0) // placed a minute ago, never reported
		check(t, f, "-x", "halt")
	})
	t.Run("a halt of another version is dropped", func(t *testing.T) {
		f := newPlanFixture(1, "v1")
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.s.view.halts["svc"] = rolloutHalt{Version: "something else"}
		check(t, f, "-svc")
	})
	t.Run("an old instance that is down is replaced at once", func(t *testing.T) {
		f := newPlanFixture(2, "v2")
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "n2", 1, old, StateBackoff, 4)
		check(t, f, "+0@cur", "+1@cur", "-b")
	})
	t.Run("an instance of a lost node moves with its index", func(t *testing.T) {
		f := newPlanFixture(2, "v1")
		f.place("a", "n1", 0, old, StateRunning, 0)
		f.place("b", "gone", 1, old, "", 0)
		check(t, f, "move b")
	})
}
