package gdpm

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// checkName validates a service name: 1 to 63 lower-case letters, digits
// and '-', starting with a letter or a digit (a leading '-' would read as
// a flag on the command line). A name that parses as a UUID is refused:
// routes take a name or an id in the same place, and a service id is a
// UUID, so the two can never be confused.
func checkName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("Name %q %s: %w", truncate(name, 80), why, ErrBadRequest)
	}
	switch {
	case name == "":
		return bad("is empty")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("is longer than %d characters", MaxNameLen))
	case name[0] == '-':
		return bad("must start with a letter or a digit")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return bad("may hold only lower-case letters, digits and '-'")
		}
	}
	if _, err := uuid.Parse(name); err == nil {
		return bad("looks like a service id")
	}
	return nil
}

// resolveService turns what a route was given, a service id or a name,
// into the service id. A ref that is a valid name and names a service
// resolves to that service; anything else is taken as an id (an unknown
// one gets the route's 404 when it is read).
func (m *Master) resolveService(ctx context.Context, ref string) (string, error) {
	if checkName(ref) != nil {
		return ref, nil
	}
	resp, err := m.cli.Get(ctx, m.k.name(ref))
	if err != nil {
		return "", storeErr("gdpm: read service name", err)
	}
	if len(resp.Kvs) == 0 {
		return ref, nil
	}
	return string(resp.Kvs[0].Value), nil
}

// nameOps are the compare and put that claim a name for a service in the
// transaction that writes it: the name key must not exist yet, so two
// creates with one name cannot both succeed.
func (m *Master) nameOps(name, id string) ([]clientv3.Cmp, []clientv3.Op) {
	if name == "" {
		return nil, nil
	}
	key := m.k.name(name)
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, id)}
}
