package gdpm_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The seed contract's original web page sends bodies a strict parser must
// still read (SEED-API.md): it scales with a JSON body under the malformed
// content type "X-www-form-urlencoded", the count as a string and the
// path's id as serviceId; it deletes with a JSON body. A JSON body is
// recognised by its first byte whatever the content type says.
func TestSeedWebPageBodiesStillWork(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	id := c.create(sleepCmd(), 1)

	code, _, body := c.do("POST", "/service/"+id+"/", "X-www-form-urlencoded", fmt.Sprintf(`{"serviceId":%q,"InstanceNum":"3"}`, id))
	if code != http.StatusOK {
		t.Fatalf("seed web page scale: %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "InstanceNum 3", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), id)
		return err == nil && d.InstanceNum == 3, fmt.Sprint(d.InstanceNum, err)
	})
	// The same with a proper form post, and with serviceId as a form field.
	if code, _, body := c.do("POST", "/service/"+id, "application/x-www-form-urlencoded", "serviceId="+id+"&InstanceNum=2"); code != http.StatusOK {
		t.Fatalf("form scale with serviceId: %d %s", code, body)
	}
	// A JSON create sent as text/plain is read as JSON, exactly.
	code, _, other := c.do("POST", "/service/", "text/plain", fmt.Sprintf(` {"Command":%q,"InstanceNum":2}`, sleepCmd()))
	if code != http.StatusOK {
		t.Fatalf("JSON create as text/plain: %d %s", code, other)
	}
	if d, err := c.client.Service(ctxT(t), other); err != nil || d.InstanceNum != 2 || d.Command != sleepCmd() {
		t.Fatalf("JSON create as text/plain stored %+v %v", d, err)
	}
	code, _, body = c.do("DELETE", "/service/"+id+"/", "application/json", fmt.Sprintf(`{"serviceId":%q}`, id))
	if code != http.StatusOK {
		t.Fatalf("seed web page delete with a JSON body: %d %s", code, body)
	}
}
