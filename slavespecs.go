package gdpm

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// specCache gives a slave the spec each of its assignments names. An
// assignment carries no spec, only its service and SpecRev, the mod
// revision of the service record the scheduler placed it from; the slave
// reads the record at exactly that revision. Reading by revision makes the
// order of events irrelevant: the assignment may name a revision newer than
// anything this slave has seen (etcd's reads are linearizable), and a later
// change of the record (a scale) does not change what an assignment runs.
// A spec is read once per (service, revision), however many instances name
// it, and kept while an assignment names it.
//
// Only the session's follow goroutine uses it.
type specCache struct {
	cli     *clientv3.Client
	k       keyspace
	timeout time.Duration
	log     *slog.Logger
	specs   map[specRef]namedSpec
}

// namedSpec is a service's spec and its name, as a record holds them.
type namedSpec struct {
	Spec
	name string
}

type specRef struct {
	svc string
	rev int64
}

func newSpecCache(cli *clientv3.Client, k keyspace, timeout time.Duration, log *slog.Logger) *specCache {
	return &specCache{cli: cli, k: k, timeout: timeout, log: log, specs: map[specRef]namedSpec{}}
}

// resolve fills in the Spec of every assignment in desired and marks it
// resolved, then forgets the specs no assignment of desired names (desired
// is all of the node's assignments). An assignment whose service record is
// gone stays unresolved: the service was deleted and the scheduler removes
// its assignments; the supervisor starts nothing for it (and does not stop
// a copy that runs). It fails only when etcd cannot be read.
func (c *specCache) resolve(ctx context.Context, desired map[string]Assignment) error {
	if err := c.fill(ctx, desired); err != nil {
		return err
	}
	used := map[specRef]bool{}
	for _, a := range desired {
		if a.SpecRev != 0 {
			used[specRef{a.Service, a.SpecRev}] = true
		}
	}
	c.keep(used)
	return nil
}

// fill resolves the assignments of changes (a watch batch: an entry whose
// Service is "" is a deletion and is left alone) and forgets nothing.
func (c *specCache) fill(ctx context.Context, changes map[string]Assignment) error {
	missing := map[specRef]bool{}
	for key, a := range changes {
		if a.Service == "" {
			continue
		}
		if a.SpecRev == 0 {
			// Written with its spec inline (gdpm 0.1, or by hand).
			a.resolved = a.Spec.Command != ""
			changes[key] = a
			continue
		}
		ref := specRef{a.Service, a.SpecRev}
		if a.resolved || missing[ref] {
			continue
		}
		spec, ok := c.specs[ref]
		if !ok {
			var err error
			if spec, ok, err = c.read(ctx, ref); err != nil {
				return err
			}
			if !ok {
				missing[ref] = true
				continue
			}
			c.specs[ref] = spec
		}
		a.Spec, a.Name, a.resolved = spec.Spec, spec.name, true
		changes[key] = a
	}
	return nil
}

// keep forgets the cached specs that used does not name.
func (c *specCache) keep(used map[specRef]bool) {
	for ref := range c.specs {
		if !used[ref] {
			delete(c.specs, ref)
		}
	}
}

// read returns the spec of a service record at a revision; false when the
// service does not exist there.
func (c *specCache) read(ctx context.Context, ref specRef) (namedSpec, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.cli.Get(cctx, c.k.service(ref.svc), clientv3.WithRev(ref.rev))
	if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrFutureRev) {
		// The history is gone. The latest record is the best left:
		// the same spec unless the service changed since, and then a
		// rollout replaces this instance with one of the new spec.
		resp, err = c.cli.Get(cctx, c.k.service(ref.svc))
	}
	if err != nil {
		return namedSpec{}, false, storeErr("gdpm: read spec of service "+logValue(ref.svc), err)
	}
	if len(resp.Kvs) == 0 {
		return namedSpec{}, false, nil
	}
	var s Service
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		c.log.Warn("service record is corrupt; its instances cannot start", "service", logValue(ref.svc), "err", err)
		return namedSpec{}, false, nil
	}
	return namedSpec{Spec: s.Spec, name: s.Name}, true, nil
}
