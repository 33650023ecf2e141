package gdpm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"
	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"
)

// A spec file holds one service or a list of them, in YAML or JSON, each
// with the fields of CreateRequest; Name is required. PUT /service/:name
// takes one of them and makes the service match it.

// ApplyResult says what PUT /service/:name did.
type ApplyResult struct {
	ID     string `json:"ID"`
	Name   string `json:"Name"`
	Result string `json:"Result"` // ApplyCreated, ApplyUpdated or ApplyUnchanged
}

// The results of PUT /service/:name.
const (
	ApplyCreated   = "created"   // there was no service of that name
	ApplyUpdated   = "updated"   // the spec, InstanceNum or Rollout changed
	ApplyUnchanged = "unchanged" // nothing to do; nothing restarted
)

// ParseSpecFile reads a spec file: YAML or JSON, one service or a list.
// Unknown fields are errors, so that a misspelt field is not silently
// ignored; every service needs a Name, and a name may appear once.
func ParseSpecFile(data []byte) ([]CreateRequest, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("gdpm: spec file: %v: %w", err, ErrBadRequest)
	}
	js = bytes.TrimSpace(js)
	var out []CreateRequest
	switch {
	case len(js) == 0 || string(js) == "null":
		return nil, fmt.Errorf("gdpm: spec file is empty: %w", ErrBadRequest)
	case js[0] == '[':
		// Each service is read as a create body is: keys exact and
		// unique (JSON's own decoder matches them case-insensitively).
		var raws []json.RawMessage
		if err = strictJSON(js, &raws); err == nil {
			out = make([]CreateRequest, 0, len(raws))
			for _, raw := range raws {
				var one CreateRequest
				if one, err = decodeCreateBody(raw, bodyJSON); err != nil {
					break
				}
				out = append(out, one)
			}
		}
	case js[0] == '{':
		var one CreateRequest
		one, err = decodeCreateBody(js, bodyJSON)
		out = []CreateRequest{one}
	default:
		return nil, fmt.Errorf("gdpm: spec file must hold a service or a list of services: %w", ErrBadRequest)
	}
	if err != nil {
		return nil, fmt.Errorf("gdpm: spec file: %v: %w", err, ErrBadRequest)
	}
	seen := map[string]bool{}
	for i := range out {
		out[i].dropEmpty()
		s := out[i]
		if s.Name == "" {
			return nil, fmt.Errorf("gdpm: spec file: service %d has no Name: %w", i+1, ErrBadRequest)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("gdpm: spec file: service %q is given twice: %w", s.Name, ErrBadRequest)
		}
		seen[s.Name] = true
	}
	return out, nil
}

// dropEmpty makes an empty Env, Ports or Rlimits nil: they mean the same,
// and a spec written back (omitempty) then reads back identical (found
// by FuzzParseSpecFile: "Env: {}").
func (r *CreateRequest) dropEmpty() {
	if len(r.Env) == 0 {
		r.Env = nil
	}
	if len(r.Ports) == 0 {
		r.Ports = nil
	}
	if len(r.Rlimits) == 0 {
		r.Rlimits = nil
	}
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the first value")
	}
	return nil
}

// SpecOf is the spec file entry that describes a service as it stands:
// applying it changes nothing.
func SpecOf(s Service) CreateRequest {
	n := s.InstanceNum
	req := CreateRequest{
		Name: s.Name, Command: s.Command, InstanceNum: &n, Env: s.Env, Dir: s.Dir,
		Restart: s.restartPolicy(), StopTimeout: Duration(s.stopTimeout()), Ports: s.Ports, Rollout: s.Rollout,
		Supervision: s.Supervision,
	}
	return req
}

// MarshalSpecFile writes services as a YAML spec file (a list when there
// are several).
func MarshalSpecFile(specs ...CreateRequest) ([]byte, error) {
	if len(specs) == 1 {
		return yaml.Marshal(specs[0])
	}
	return yaml.Marshal(specs)
}

func (m *Master) handlePutService(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	name := p.ByName("id")
	var req CreateRequest
	body, kind, err := readBody(w, r, m.cfg.MaxBodyBytes)
	if err == nil {
		req, err = decodeCreateBody(body, kind)
	}
	if err == nil {
		err = checkName(name)
	}
	if err == nil && req.Name != "" && req.Name != name {
		err = fmt.Errorf("Name %q in the body is not the %q of the path: %w", req.Name, name, ErrBadRequest)
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	req.Name = name
	want, err := m.validateCreate(req)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	if err := m.checkEnforceable(ctx, want.Spec); err != nil {
		m.fail(w, r, err)
		return
	}
	res, err := m.apply(ctx, want)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	m.log.Info("service applied", "id", res.ID, "name", name, "result", res.Result)
	writeJSON(w, http.StatusOK, res)
}

// apply makes the service called want.Name match want: it creates it, or
// replaces its spec, InstanceNum and Rollout (keeping its id, creation
// time, Stopped and restart count), or leaves it alone when they match.
func (m *Master) apply(ctx context.Context, want Service) (ApplyResult, error) {
	res := ApplyResult{Name: want.Name}
	for attempt := 0; attempt < 6; attempt++ {
		nresp, err := m.cli.Get(ctx, m.k.name(want.Name))
		if err != nil {
			return res, storeErr("gdpm: read service name", err)
		}
		if len(nresp.Kvs) == 0 {
			val, _ := json.Marshal(want)
			key := m.k.service(want.ID)
			cmps, ops := m.nameOps(want.Name, want.ID)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			ops = append(ops, clientv3.OpPut(key, string(val)))
			wctx, sent := withSentFlag(ctx)
			resp, err := m.cli.Txn(wctx).If(cmps...).Then(ops...).Commit()
			if err != nil {
				return res, writeErr("gdpm: create service", sent, err)
			}
			if resp.Succeeded {
				res.ID, res.Result = want.ID, ApplyCreated
				return res, nil
			}
			continue // created meanwhile: compare with it
		}
		id := string(nresp.Kvs[0].Value)
		cur, modRev, _, err := m.getService(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return res, err
		}
		res.ID = id
		next := cur
		next.Spec, next.InstanceNum, next.Rollout = want.Spec, want.InstanceNum, want.Rollout
		if sameService(cur, next) {
			res.Result = ApplyUnchanged
			return res, nil
		}
		val, _ := json.Marshal(next)
		key := m.k.service(id)
		wctx, sent := withSentFlag(ctx)
		resp, err := m.cli.Txn(wctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return res, writeErr("gdpm: update service", sent, err)
		}
		if resp.Succeeded {
			res.Result = ApplyUpdated
			return res, nil
		}
	}
	return res, fmt.Errorf("gdpm: apply service %q: %w", want.Name, ErrConflict)
}

// sameService reports whether applying b over a would change nothing: the
// same version (specs equal but for spelt-out defaults), count and policy.
func sameService(a, b Service) bool {
	return a.version() == b.version() && a.InstanceNum == b.InstanceNum && a.Rollout == b.Rollout
}
