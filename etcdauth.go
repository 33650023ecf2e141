package gdpm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcd's own access control confines a slave to its keys. With auth on and
// client certificates required, etcd takes the user from the certificate's
// common name: a slave's certificate is named after its node id (join.go),
// and the masters' after etcdRootUser (CA.EtcdClientTLS), whatever name
// they are issued for, so no master can be locked out for lack of a user.
// The users have no password: certificates are the only way in.
//
// A slave reads its assignments and the services' specs, and writes its
// node record, its usage and the statuses of its instances, all on its
// lease. etcd checks a lease's renewal and revocation against write
// permission on every key attached to it, and a transaction's compares
// against read permission, so those are covered by the same grants.

// etcdRootUser is the user with etcd's root role (etcdRootRole, built
// in), which reads and writes everything and manages auth.
const (
	etcdRootUser = "root"
	etcdRootRole = "root"
)

// slaveRoleName is the role every slave of the cluster under k's prefix
// shares: read the services, read and write the statuses. Statuses are
// keyed by service, not node, so any slave can write any status; but not
// on another node's lease, which is what the masters believe a status by
// (statustrust.go).
func slaveRoleName(k keyspace) string { return "gdpm-slave:" + k.p }

// nodeRoleName is node id's own role: its assignments, record and usage.
func nodeRoleName(id string) string { return "gdpm-node-" + id }

type etcdPerm struct {
	key    string
	prefix bool
	perm   clientv3.PermissionType
}

var (
	permRead      = clientv3.PermissionType(clientv3.PermRead)
	permReadWrite = clientv3.PermissionType(clientv3.PermReadWrite)
)

// slavePerms and nodePerms are what the roles grant: every key a slave
// reads, watches, compares or writes (slave.go, slavespecs.go,
// slavestatus.go, usagereport.go).
func slavePerms(k keyspace) []etcdPerm {
	return []etcdPerm{
		{key: k.services(), prefix: true, perm: permRead},
		{key: k.statusAll(), prefix: true, perm: permReadWrite},
	}
}

func nodePerms(k keyspace, id string) []etcdPerm {
	return []etcdPerm{
		{key: k.assigns(id), prefix: true, perm: permRead},
		{key: k.node(id), perm: permReadWrite},
		{key: k.usage(id), perm: permReadWrite},
		{key: k.usage(id) + "/", prefix: true, perm: permReadWrite},
	}
}

// ensureNodeUser makes node id's etcd user, with the shared slave role and
// its own, unless it has them already (a slave that joins again). Every
// step is idempotent, so concurrent masters and a retry after a failure
// in the middle end in the same state; the user gets its roles last, so
// a user with both roles has every permission.
func ensureNodeUser(ctx context.Context, cli *clientv3.Client, k keyspace, id string) error {
	if id == "" || id == etcdRootUser || strings.Contains(id, "/") {
		return fmt.Errorf("%w: node id %q cannot be an etcd user", ErrBadRequest, id)
	}
	shared, own := slaveRoleName(k), nodeRoleName(id)
	u, err := cli.UserGet(ctx, id)
	switch {
	case err == nil && slices.Contains(u.Roles, shared) && slices.Contains(u.Roles, own):
		return nil
	case err != nil && !errors.Is(err, rpctypes.ErrUserNotFound):
		return err
	}
	if err := ensureRole(ctx, cli, shared, slavePerms(k)); err != nil {
		return err
	}
	if err := ensureRole(ctx, cli, own, nodePerms(k, id)); err != nil {
		return err
	}
	if _, err := cli.UserAddWithOptions(ctx, id, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return err
	}
	for _, r := range []string{shared, own} {
		if _, err := cli.UserGrantRole(ctx, id, r); err != nil {
			return err
		}
	}
	return nil
}

// ensureRole adds role with perms; granting a permission it has already
// changes nothing.
func ensureRole(ctx context.Context, cli *clientv3.Client, role string, perms []etcdPerm) error {
	if _, err := cli.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return err
	}
	for _, p := range perms {
		end := ""
		if p.prefix {
			end = clientv3.GetPrefixRangeEnd(p.key)
		}
		if _, err := cli.RoleGrantPermission(ctx, role, p.key, end, p.perm); err != nil {
			return err
		}
	}
	return nil
}

// enableEtcdAuth turns on auth in an etcd that requires client
// certificates from the cluster CA: the root user (no password) with the
// root role, a user for every node the data already holds (an etcd from
// before auth, whose running slaves must keep working), then auth. An
// etcd with auth on already is left as it is, so restarts are cheap.
// cli must be allowed to do all this while auth is off (any client is).
func enableEtcdAuth(ctx context.Context, cli *clientv3.Client, k keyspace) error {
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return err
	}
	if st.Enabled {
		return nil
	}
	if _, err := cli.UserAddWithOptions(ctx, etcdRootUser, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return err
	}
	if _, err := cli.UserGrantRole(ctx, etcdRootUser, etcdRootRole); err != nil {
		return err
	}
	ids, err := knownNodes(ctx, cli, k)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := ensureNodeUser(ctx, cli, k, id); err != nil {
			return fmt.Errorf("etcd user for node %s: %w", id, err)
		}
	}
	_, err = cli.AuthEnable(ctx)
	return err
}

// knownNodes are the node ids under nodes/ and assign/: the live nodes,
// and those whose instances wait for them to come back.
func knownNodes(ctx context.Context, cli *clientv3.Client, k keyspace) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	for _, prefix := range []string{k.nodes(), k.assignAll()} {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return nil, err
		}
		for _, kv := range resp.Kvs {
			id, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
			if id != "" && id != etcdRootUser && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// etcdUserForSlave makes the etcd user of a slave that joins with a
// certificate from the cluster CA, when etcd has auth on (the embedded
// etcd with the CA turns it on); an etcd without auth needs none.
func (m *Master) etcdUserForSlave(ctx context.Context, id string) error {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	st, err := m.cli.AuthStatus(cctx)
	if err != nil {
		return storeErr("gdpm: etcd auth status", err)
	}
	if !st.Enabled {
		return nil
	}
	if err := ensureNodeUser(cctx, m.cli, m.k, id); err != nil {
		if errors.Is(err, ErrBadRequest) {
			return err
		}
		return storeErr("gdpm: etcd user for node "+id, err)
	}
	return nil
}
