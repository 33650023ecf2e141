package gdpm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/google/uuid"
)

func sleepCmd() string { return gdpm.ProgramForTests() + " sleep" }

func TestSlavesRegisterAndListAsOnline(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 2})
	var nodes gdpm.NodeList
	waitFor(t, 10*time.Second, "two nodes listed", func() (bool, string) {
		var err error
		nodes, err = c.client.Nodes(ctxT(t))
		return err == nil && len(nodes.Ids) == 2, fmt.Sprint(nodes, err)
	})
	want := map[string]bool{c.slaves[0].NodeID(): true, c.slaves[1].NodeID(): true}
	for i, id := range nodes.Ids {
		if !want[id] {
			t.Errorf("node %s listed but no slave has that id (want %v)", id, want)
		}
		if _, err := uuid.Parse(id); err != nil {
			t.Errorf("node id %q is not a UUID", id)
		}
		if nodes.Status[i] != gdpm.NodeOnline {
			t.Errorf("node %s status %d, want %d", id, nodes.Status[i], gdpm.NodeOnline)
		}
		if _, err := time.Parse(time.RFC822, nodes.Times[i]); err != nil {
			t.Errorf("Times[%d] = %q is not RFC822: %v", i, nodes.Times[i], err)
		}
		if nodes.ServiceNum[i] != 0 {
			t.Errorf("ServiceNum[%d] = %d, want 0", i, nodes.ServiceNum[i])
		}
	}
}

func TestSeedRoutesJSONAndFormWithAndWithoutSlash(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	cmd := sleepCmd()

	code, hdr, body := c.do("POST", "/service/", "application/json", fmt.Sprintf(`{"Command":%q,"InstanceNum":2}`, cmd))
	if code != http.StatusOK {
		t.Fatalf("create JSON: %d %s", code, body)
	}
	if _, err := uuid.Parse(body); err != nil {
		t.Fatalf("create answered %q, want a bare UUID: %v", body, err)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("create Content-Type %q, want text/plain", ct)
	}
	jsonID := body

	form := url.Values{"Command": {cmd}, "InstanceNum": {"1"}}.Encode()
	code, _, body = c.do("POST", "/service", "application/x-www-form-urlencoded", form)
	if code != http.StatusOK {
		t.Fatalf("create form: %d %s", code, body)
	}
	formID := body

	// A form without InstanceNum means one instance.
	code, _, body = c.do("POST", "/service", "application/x-www-form-urlencoded", url.Values{"Command": {cmd}}.Encode())
	if code != http.StatusOK {
		t.Fatalf("create form without InstanceNum: %d %s", code, body)
	}
	defaultID := body

	c.waitRunning(jsonID, 2)
	c.waitRunning(formID, 1)
	c.waitRunning(defaultID, 1)

	node := c.slaves[0].NodeID()
	for _, path := range []string{"/node/" + node + "/", "/node/" + node} {
		code, hdr, body := c.do("GET", path, "", "")
		if code != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q %s", path, code, hdr.Get("Content-Type"), body)
		}
		var ns gdpm.NodeServices
		if err := json.Unmarshal([]byte(body), &ns); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for i, id := range ns.Ids {
			got[id] = ns.Number[i]
			if ns.Command[i] != cmd {
				t.Errorf("Command[%d] = %q, want %q", i, ns.Command[i], cmd)
			}
		}
		want := map[string]int{jsonID: 2, formID: 1, defaultID: 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("GET %s: services %v, want %v", path, got, want)
		}
	}
	for _, path := range []string{"/node/", "/node"} {
		code, _, body := c.do("GET", path, "", "")
		var nl gdpm.NodeList
		if code != http.StatusOK || json.Unmarshal([]byte(body), &nl) != nil || len(nl.Ids) != 1 || nl.ServiceNum[0] != 3 {
			t.Errorf("GET %s: %d %s, want one node with ServiceNum 3", path, code, body)
		}
	}

	// Scale with JSON (slash) and form (no slash).
	if code, _, body := c.do("POST", "/service/"+jsonID+"/", "application/json", `{"InstanceNum":3}`); code != http.StatusOK {
		t.Fatalf("scale JSON: %d %s", code, body)
	}
	if code, _, body := c.do("POST", "/service/"+formID, "application/x-www-form-urlencoded", "InstanceNum=2"); code != http.StatusOK {
		t.Fatalf("scale form: %d %s", code, body)
	}
	c.waitRunning(jsonID, 3)
	c.waitRunning(formID, 2)

	// Delete with and without slash.
	pids := c.waitRunning(defaultID, 1)
	if code, _, body := c.do("DELETE", "/service/"+defaultID, "", ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, body)
	}
	waitDead(t, pids)
	pids = c.waitRunning(formID, 2)
	if code, _, body := c.do("DELETE", "/service/"+formID+"/", "", ""); code != http.StatusOK {
		t.Fatalf("delete with slash: %d %s", code, body)
	}
	waitDead(t, pids)
	if _, err := c.client.Service(ctxT(t), formID); !errors.Is(err, gdpm.ErrNotFound) {
		t.Errorf("GET deleted service: err %v, want ErrNotFound", err)
	}
}

func TestInstancesSpreadRoundRobinAcrossRequests(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 2})
	id := c.create(sleepCmd(), 5)
	c.waitRunning(id, 5)
	_, perNode, err := c.running(id)
	if err != nil {
		t.Fatal(err)
	}
	counts := []int{}
	for _, n := range perNode {
		counts = append(counts, n)
	}
	sort.Ints(counts)
	if fmt.Sprint(counts) != "[2 3]" {
		t.Fatalf("5 instances on 2 nodes spread as %v, want 3+2", perNode)
	}
	// The rotation continues across requests: the next single instance
	// goes to the node that got fewer, evening the nodes out at 3+3.
	id2 := c.create(sleepCmd(), 1)
	c.waitRunning(id2, 1)
	total := map[string]int{}
	for _, svc := range []string{id, id2} {
		_, pn, _ := c.running(svc)
		for n, k := range pn {
			total[n] += k
		}
	}
	for n, k := range total {
		if k != 3 {
			t.Errorf("after 5+1 instances node %s runs %d, want 3 (rotation must continue across requests): %v", n, k, total)
		}
	}
}

func TestScaleUpAndDownKeepsNodesBalanced(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 2})
	id := c.create(sleepCmd(), 2)
	c.waitRunning(id, 2)
	if err := c.client.ScaleService(ctxT(t), id, 7); err != nil {
		t.Fatal(err)
	}
	before := c.waitRunning(id, 7)
	if err := c.client.ScaleService(ctxT(t), id, 3); err != nil {
		t.Fatal(err)
	}
	after := c.waitRunning(id, 3)
	_, perNode, _ := c.running(id)
	for n, k := range perNode {
		if k < 1 || k > 2 {
			t.Errorf("after scale-down to 3 node %s holds %d: %v (must remove from the node with most)", n, k, perNode)
		}
	}
	// The survivors are processes that were already running, and the
	// removed ones are gone.
	kept := map[int]bool{}
	for _, p := range after {
		kept[p] = true
	}
	var removed []int
	for _, p := range before {
		if !kept[p] {
			removed = append(removed, p)
		}
	}
	if len(removed) != 4 {
		t.Fatalf("scale 7->3 replaced processes: before %v after %v", before, after)
	}
	waitDead(t, removed)
	d, err := c.client.Service(ctxT(t), id)
	if err != nil || d.InstanceNum != 3 || len(d.Instances) != 3 {
		t.Fatalf("GET after scale: InstanceNum %d, %d instances, err %v; want 3, 3", d.InstanceNum, len(d.Instances), err)
	}
	// Scale to zero stops everything but keeps the service.
	if err := c.client.ScaleService(ctxT(t), id, 0); err != nil {
		t.Fatal(err)
	}
	waitDead(t, after)
	c.waitRunning(id, 0)
}

func TestPendingQueueDrainsWhenSlaveJoins(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	id := c.create(sleepCmd(), 3)
	waitFor(t, 10*time.Second, "3 pending instances", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), id)
		return err == nil && d.Pending == 3 && len(d.Instances) == 3, fmt.Sprintf("%+v %v", d, err)
	})
	list, err := c.client.Services(ctxT(t))
	if err != nil || len(list) != 1 || list[0].Pending != 3 || list[0].Running != 0 {
		t.Fatalf("GET /service/ while queued: %+v %v; want 1 service with Pending 3", list, err)
	}
	// Queued services can be scaled and deleted.
	if err := c.client.ScaleService(ctxT(t), id, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "2 pending after scale-down", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), id)
		return err == nil && d.Pending == 2, fmt.Sprintf("%+v %v", d, err)
	})
	gone := c.create(sleepCmd(), 4)
	if err := c.client.DeleteService(ctxT(t), gone); err != nil {
		t.Fatal(err)
	}
	c.addSlave()
	c.waitRunning(id, 2)
	d, _ := c.client.Service(ctxT(t), id)
	if d.Pending != 0 {
		t.Errorf("after a slave joined %d still pending", d.Pending)
	}
	if _, err := c.client.Service(ctxT(t), gone); !errors.Is(err, gdpm.ErrNotFound) {
		t.Errorf("deleted queued service: %v, want not found", err)
	}
}
