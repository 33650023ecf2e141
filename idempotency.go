package gdpm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Idempotent creates. A client that sent POST /service/ and got no answer
// (a timeout, a broken connection, a 504) cannot know whether the service
// exists; retrying without a key could make two. With an Idempotency-Key
// header the master stores the key with the service it created, in the
// same transaction, so either both exist or neither does; a retry with
// that key finds it and answers the same id, creating nothing.

// IdempotencyKeyHeader names the request header of an idempotent create.
const IdempotencyKeyHeader = "Idempotency-Key"

// IdempotentReplayedHeader is "true" in the answer to a create that a key
// matched to an earlier one: nothing was created now.
const IdempotentReplayedHeader = "Idempotent-Replayed"

// idemLeaseEvery is how long one etcd lease carries new keys. Its TTL is
// IdempotencyKeyTTL plus this, so every key it carries lives at least
// IdempotencyKeyTTL, and the master grants one lease an hour, not one per
// create.
const idemLeaseEvery = time.Hour

// idemRecord is the value stored under an Idempotency-Key.
type idemRecord struct {
	// ID is the service the key created.
	ID string `json:"ID"`
	// Request is the SHA-256 of the create request as the master
	// understood it, so that a reuse of the key for another request is
	// told apart from a retry.
	Request string `json:"Request"`
}

// idemLeases is the lease new Idempotency-Keys are bound to.
type idemLeases struct {
	mu      sync.Mutex
	id      clientv3.LeaseID
	granted time.Time
}

func checkIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKey {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", IdempotencyKeyHeader, len(key), MaxIdempotencyKey, ErrBadRequest)
	}
	for _, c := range []byte(key) {
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("%s must be printable ASCII without spaces (a UUID is a good key): %w", IdempotencyKeyHeader, ErrBadRequest)
		}
	}
	return nil
}

// idemKey is the etcd key of an Idempotency-Key: hashed, so that any
// printable key makes a well-formed etcd key of fixed length.
func (k keyspace) idempotency(key string) string {
	sum := sha256.Sum256([]byte(key))
	return k.p + "idempotency/" + hex.EncodeToString(sum[:])
}

// fingerprint identifies a create request by what it asks for: the spec
// and the count of s, not the id and time the master gave it.
func fingerprint(s Service) string {
	b, _ := json.Marshal(struct {
		Spec
		InstanceNum int
		Name        string        `json:",omitempty"`
		Rollout     RolloutPolicy `json:",omitzero"`
	}{s.Spec, s.InstanceNum, s.Name, s.Rollout})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// lease returns a lease that keeps a key at least IdempotencyKeyTTL.
func (l *idemLeases) lease(ctx context.Context, cli *clientv3.Client) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id != 0 && time.Since(l.granted) < idemLeaseEvery {
		return l.id, nil
	}
	resp, err := cli.Grant(ctx, int64((IdempotencyKeyTTL + idemLeaseEvery + time.Minute).Seconds()))
	if err != nil {
		return 0, storeErr("gdpm: create service: lease for the idempotency key", err)
	}
	l.id, l.granted = resp.ID, time.Now()
	return l.id, nil
}

func (l *idemLeases) forget(id clientv3.LeaseID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id == id {
		l.id = 0
	}
}

// createService stores s, and with a non-empty Idempotency-Key the key
// too, atomically. It returns the id of the service the request stands
// for and whether it was created now (false: a retry of an earlier one).
func (m *Master) createService(ctx context.Context, s Service, key string) (string, bool, error) {
	val, _ := json.Marshal(s)
	svcKey := m.k.service(s.ID)
	absent := clientv3.Compare(clientv3.CreateRevision(svcKey), "=", 0)
	put := clientv3.OpPut(svcKey, string(val))
	exists := fmt.Errorf("gdpm: service id %s already exists: %w", s.ID, ErrConflict)
	// The name is claimed in the same transaction (names.go).
	nameCmps, nameOps := m.nameOps(s.Name, s.ID)
	if s.Name != "" {
		exists = fmt.Errorf("a service named %q already exists: %w", s.Name, ErrNameTaken)
	}
	if key == "" {
		wctx, sent := withSentFlag(ctx)
		resp, err := m.cli.Txn(wctx).If(append(nameCmps, absent)...).Then(append(nameOps, put)...).Commit()
		if err != nil {
			return "", false, writeErr("gdpm: create service", sent, err)
		}
		if !resp.Succeeded {
			return "", false, exists
		}
		return s.ID, true, nil
	}
	ik, fp := m.k.idempotency(key), fingerprint(s)
	rec, _ := json.Marshal(idemRecord{ID: s.ID, Request: fp})
	for attempt := 0; ; attempt++ {
		lease, err := m.idem.lease(ctx, m.cli)
		if err != nil {
			return "", false, err
		}
		wctx, sent := withSentFlag(ctx)
		resp, err := m.cli.Txn(wctx).
			If(append(nameCmps, absent, clientv3.Compare(clientv3.CreateRevision(ik), "=", 0))...).
			Then(append(nameOps, put, clientv3.OpPut(ik, string(rec), clientv3.WithLease(lease)))...).
			Else(clientv3.OpGet(ik)).
			Commit()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			// The lease expired or was revoked under us; etcd refused the
			// whole transaction. Take a new one.
			m.idem.forget(lease)
			continue
		}
		if err != nil {
			return "", false, writeErr("gdpm: create service", sent, err)
		}
		if resp.Succeeded {
			return s.ID, true, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return "", false, exists
		}
		var prev idemRecord
		if json.Unmarshal(kvs[0].Value, &prev) != nil || prev.ID == "" {
			return "", false, fmt.Errorf("gdpm: create service: the record of %s %q is corrupt", IdempotencyKeyHeader, key)
		}
		if prev.Request != fp {
			return "", false, fmt.Errorf("%s %q was already used for another request (service %s): use a new key for a new service: %w",
				IdempotencyKeyHeader, key, prev.ID, ErrConflict)
		}
		return prev.ID, false, nil
	}
}
