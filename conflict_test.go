package gdpm_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/capy-pl/gdpm"
)

// Concurrent scales of one service race on its key; the master retries the
// losers itself, so every request lands (the last one wins) and none sees
// 503, which means "etcd unreachable, nothing written" (issue 10 item 6).
func TestConcurrentScalesAllLandWithout503(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	id := c.create(sleepCmd(), 0)
	const writers = 50
	codes := make([]int, writers)
	bodies := make([]string, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", "http://"+c.master().HTTPAddr()+"/service/"+id+"/",
				strings.NewReader(fmt.Sprintf(`{"InstanceNum":%d}`, i+1)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[i], bodies[i] = resp.StatusCode, string(b)
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for i, code := range codes {
		count[code]++
		if code != http.StatusOK {
			t.Errorf("scale to %d: %d %s", i+1, code, bodies[i])
		}
	}
	t.Logf("%d concurrent scales: statuses %v", writers, count)
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.InstanceNum < 1 || d.InstanceNum > writers {
		t.Errorf("final InstanceNum %d, want one of the requested 1..%d", d.InstanceNum, writers)
	}
}

// The client and the master agree on what each status means: one table.
func TestStatusesUnwrapToTheSentinelsTheMasterAnswersWith(t *testing.T) {
	for status, want := range map[int]error{
		400: gdpm.ErrBadRequest, 401: gdpm.ErrUnauthorized, 403: gdpm.ErrForbidden,
		404: gdpm.ErrNotFound, 409: gdpm.ErrConflict, 413: gdpm.ErrTooLarge,
		415: gdpm.ErrUnsupportedMedia, 503: gdpm.ErrUnavailable, 504: gdpm.ErrOutcomeUnknown,
	} {
		err := &gdpm.APIError{StatusCode: status, Message: "x"}
		if !errors.Is(err, want) {
			t.Errorf("HTTP %d does not unwrap to %v", status, want)
		}
	}
	for _, status := range []int{413, 415} {
		if !errors.Is(&gdpm.APIError{StatusCode: status}, gdpm.ErrBadRequest) {
			t.Errorf("HTTP %d is not also ErrBadRequest", status)
		}
	}
	if errors.Is(&gdpm.APIError{StatusCode: 504}, gdpm.ErrUnavailable) {
		t.Error("504 (outcome unknown) must not read as ErrUnavailable (nothing written)")
	}
}
