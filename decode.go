package gdpm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Strict decoding of the API's request bodies. encoding/json alone ignores
// unknown fields, matches keys case-insensitively and lets the last of two
// equal keys win; url.Values lets the first of two equal fields win. Each
// of those let a request mean something else than what was stored
// ({"Command":"sleep 1","command":"rm -rf /"}), so the decoders here
// refuse them all, with a message naming the field. Validation of the
// values is separate (validateCreate, checkInstanceNum).
//
// The seed contract (SEED-API.md) fixes what must still be read: a JSON
// body or form fields; a JSON body is recognised by its first non-space
// byte whatever the content type says (the original web page sends JSON
// as "X-www-form-urlencoded"); a scale body may carry "serviceId" equal to
// the path's id and the count as a decimal string.

// bodyKind is how a request body is read.
type bodyKind int

const (
	bodyJSON bodyKind = iota
	bodyForm
)

// maxJSONDepth bounds the nesting of a JSON body: no route reads more than
// two levels, and the key check walks every level.
const maxJSONDepth = 32

// readBody reads r's body, at most limit bytes, and says how to read it.
// A request with a query string, a compressed body or a content type that
// is neither JSON nor form fields is refused.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bodyKind, error) {
	if r.URL.RawQuery != "" {
		return nil, 0, fmt.Errorf("this route reads no query parameters (got %q): send the fields in the body: %w", r.URL.RawQuery, ErrBadRequest)
	}
	for _, ce := range r.Header.Values("Content-Encoding") {
		for v := range strings.SplitSeq(ce, ",") {
			if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, "identity") {
				return nil, 0, fmt.Errorf("Content-Encoding %q is not supported: send the body uncompressed: %w", v, ErrUnsupportedMedia)
			}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("reading the body: %v: %w", err, ErrBadRequest)
	}
	kind, err := bodyKindOf(r.Header.Get("Content-Type"), body)
	return body, kind, err
}

// bodyKindOf decides how to read body sent as ctype.
func bodyKindOf(ctype string, body []byte) (bodyKind, error) {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return bodyJSON, nil // the seed contract: JSON by its first byte
	}
	mt, _, err := mime.ParseMediaType(ctype)
	switch {
	case ctype == "":
		return bodyJSON, nil
	case mt == "x-www-form-urlencoded":
		return bodyForm, nil // the seed web page's "X-www-form-urlencoded"
	case err != nil || !strings.Contains(mt, "/"):
		return 0, fmt.Errorf("Content-Type %q is malformed: send application/json or application/x-www-form-urlencoded: %w", ctype, ErrUnsupportedMedia)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return bodyJSON, nil
	case mt == "application/x-www-form-urlencoded":
		return bodyForm, nil
	}
	return 0, fmt.Errorf("Content-Type %q is not read here: send a JSON object as application/json, or form fields as application/x-www-form-urlencoded: %w", mt, ErrUnsupportedMedia)
}

// jsonMembers parses body as exactly one JSON object with distinct keys at
// every depth, and returns its members by their exact key.
func jsonMembers(body []byte) (map[string]json.RawMessage, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf(format+": %w", append(args, ErrBadRequest)...)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, bad("empty body: send a JSON object")
	}
	// encoding/json would store bytes that are not UTF-8 as U+FFFD: not
	// what was sent (found by FuzzDecodeCreate).
	if !utf8.Valid(body) {
		return nil, bad("body is not valid UTF-8")
	}
	if err := checkJSONKeys(body); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var members map[string]json.RawMessage
	if err := dec.Decode(&members); err != nil || members == nil {
		return nil, bad("body is not valid JSON for this route: want a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("body has data after the JSON object")
	}
	return members, nil
}

// checkJSONKeys walks body's tokens and refuses invalid JSON, nesting
// deeper than maxJSONDepth and an object with two equal keys.
func checkJSONKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// One entry per open object (its keys so far) or array (nil).
	var stack []map[string]bool
	// inKey: the next token in the innermost object is a key.
	inKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil // data after the value is dealt with by the caller
		}
		if err != nil {
			return fmt.Errorf("body is not valid JSON for this route: %v: %w", err, ErrBadRequest)
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("body is nested deeper than %d levels: %w", maxJSONDepth, ErrBadRequest)
				}
				if d == '{' {
					stack = append(stack, map[string]bool{})
				} else {
					stack = append(stack, nil)
				}
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			inKey = len(stack) > 0 && stack[len(stack)-1] != nil
			if len(stack) == 0 {
				return nil
			}
			continue
		}
		if inKey {
			key := tok.(string)
			keys := stack[len(stack)-1]
			if keys[key] {
				return fmt.Errorf("key %q appears twice in one JSON object: %w", key, ErrBadRequest)
			}
			keys[key] = true
			inKey = false
			continue
		}
		if len(stack) == 0 {
			return nil // a scalar: not an object, the caller says so
		}
		inKey = stack[len(stack)-1] != nil
	}
}

// jsonFields are the exact JSON keys of struct type t's fields.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			// An embedded struct's fields are the outer object's.
			maps.Copy(out, jsonFields(f.Type))
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	return out
}

// supervisionFields are the Supervision keys of a create body: JSON only.
var supervisionFields = jsonFields(reflect.TypeFor[Supervision]())

// createFields are the keys a create body may have: CreateRequest's.
var createFields = jsonFields(reflect.TypeFor[CreateRequest]())

// unknownField refuses the first key of got (in sorted order, so the
// message is stable) that is not in allowed.
func unknownField(got []string, allowed map[string]bool, route string) error {
	sort.Strings(got)
	for _, k := range got {
		if !allowed[k] {
			hint := ""
			for a := range allowed {
				if strings.EqualFold(a, k) {
					hint = fmt.Sprintf(" (did you mean %q? names are case-sensitive)", a)
				}
			}
			return fmt.Errorf("unknown field %q in a %s request%s; the fields are %s: %w",
				k, route, hint, strings.Join(sortedKeys(allowed), ", "), ErrBadRequest)
		}
	}
	return nil
}

// decodeCreateBody reads a create request from a JSON object or from form
// fields.
func decodeCreateBody(body []byte, kind bodyKind) (CreateRequest, error) {
	var req CreateRequest
	if kind == bodyJSON {
		members, err := jsonMembers(body)
		if err != nil {
			return req, err
		}
		if err := unknownField(keysOf(members), createFields, "create"); err != nil {
			return req, err
		}
		// Every key is now exact and unique, so the standard decoder reads
		// exactly what was sent.
		if err := json.Unmarshal(body, &req); err != nil {
			return req, fmt.Errorf("body is not valid JSON for this route: %v: %w", err, ErrBadRequest)
		}
		return req, nil
	}
	form, err := parseFormBody(body, createFields, "create")
	if err != nil {
		return req, err
	}
	req.Command = form.Get("Command")
	req.Name = form.Get("Name")
	req.Ports = form["Ports"]
	for _, k := range append([]string{"Rollout"}, slices.Sorted(maps.Keys(supervisionFields))...) {
		if _, ok := form[k]; ok {
			return req, fmt.Errorf("%s cannot be given as a form field: send JSON: %w", k, ErrBadRequest)
		}
	}
	if req.InstanceNum, err = formInt(form, "InstanceNum"); err != nil {
		return req, err
	}
	req.Dir = form.Get("Dir")
	req.Restart = RestartPolicy(form.Get("Restart"))
	if v := form.Get("StopTimeout"); v != "" {
		if err := req.StopTimeout.parse(v); err != nil {
			return req, fmt.Errorf("StopTimeout: %v: %w", err, ErrBadRequest)
		}
	}
	for _, kv := range form["Env"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return req, fmt.Errorf("Env %q is not KEY=VALUE: %w", kv, ErrBadRequest)
		}
		if _, dup := req.Env[k]; dup {
			return req, fmt.Errorf("Env %q is given twice: %w", k, ErrBadRequest)
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	return req, nil
}

// scaleFields are the keys a scale body may have: the count, and the
// seed web page's serviceId.
var scaleFields = map[string]bool{"InstanceNum": true, "serviceId": true}

// decodeScaleBody reads a scale request for service id: the new count.
func decodeScaleBody(body []byte, kind bodyKind, id string) (int, error) {
	var count, svc string // as sent, JSON or form
	var haveCount, countIsString, haveSvc bool
	if kind == bodyJSON {
		members, err := jsonMembers(body)
		if err != nil {
			return 0, err
		}
		if err := unknownField(keysOf(members), scaleFields, "scale"); err != nil {
			return 0, err
		}
		if raw, ok := members["InstanceNum"]; ok {
			haveCount = true
			if err := json.Unmarshal(raw, &count); err == nil {
				countIsString = true
			} else {
				count = string(raw)
			}
		}
		if raw, ok := members["serviceId"]; ok {
			haveSvc = true
			if json.Unmarshal(raw, &svc) != nil {
				return 0, fmt.Errorf("serviceId must be a string: %w", ErrBadRequest)
			}
		}
	} else {
		form, err := parseFormBody(body, scaleFields, "scale")
		if err != nil {
			return 0, err
		}
		count, haveCount, countIsString = form.Get("InstanceNum"), form.Has("InstanceNum"), true
		svc, haveSvc = form.Get("serviceId"), form.Has("serviceId")
	}
	if haveSvc && svc != id {
		return 0, fmt.Errorf("serviceId %q is not the path's service id %q: %w", svc, id, ErrBadRequest)
	}
	if !haveCount || count == "null" && !countIsString {
		return 0, fmt.Errorf("InstanceNum is required: %w", ErrBadRequest)
	}
	// A decimal string ("3") is the seed web page's count; a JSON number
	// must be a whole one.
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil {
		return 0, fmt.Errorf("InstanceNum must be a whole number, got %.40q: %w", count, ErrBadRequest)
	}
	return n, nil
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// parseFormBody parses form fields; each field of allowed may appear once,
// except Env, which holds one variable per field.
func parseFormBody(body []byte, allowed map[string]bool, route string) (url.Values, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("bad form body: %v: %w", err, ErrBadRequest)
	}
	if err := unknownField(keysOf(form), allowed, route); err != nil {
		return nil, err
	}
	for k, vs := range form {
		if len(vs) > 1 && k != "Env" {
			return nil, fmt.Errorf("form field %q is given %d times: %w", k, len(vs), ErrBadRequest)
		}
		for _, v := range vs {
			// Stored as JSON, bytes that are not UTF-8 would become
			// U+FFFD (found by FuzzDecodeCreate).
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("form field %q is not valid UTF-8: %w", k, ErrBadRequest)
			}
		}
	}
	return form, nil
}

func formInt(form url.Values, name string) (*int, error) {
	v := strings.TrimSpace(form.Get(name))
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("%s must be a whole number, got %q: %w", name, v, ErrBadRequest)
	}
	return &n, nil
}
