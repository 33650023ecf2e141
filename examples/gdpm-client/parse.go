package main

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capy-pl/gdpm"
)

// kind is what a command line asks for.
type kind int

const (
	kindHelp kind = iota
	kindVersion
	kindGetNodes
	kindGetNode
	kindGetServices
	kindGetService
	kindCreate
	kindUpdate
	kindDelete
	kindEvents
	kindLogs
	kindCompletion
	kindApply
	kindDiff
	kindStop
	kindStart
	kindRestart
)

// Output formats for -o.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml" // get service(s): an appliable spec file
)

// command is a parsed command line: everything run needs, nothing read yet
// from the network.
type command struct {
	Kind   kind
	Topic  string // the verb; for kindHelp, the help page to show ("" = top level)
	Addr   string
	Token  string
	CAHash string   // -ca-hash / GDPM_CA_HASH: the cluster CA's pin
	TLSCA  string   // -tls-ca / GDPM_TLS_CA: a CA file to trust
	Output string   // outTable or outJSON
	ID     string   // get node/service, update, logs; completion: the shell
	IDs    []string // delete, stop, start, restart: one or more services
	File   string   // apply, diff: the spec file, "-" for stdin
	Watch  bool     // get: redraw on every event
	N      int      // update: instances wanted
	Since  int64    // events: resume after this revision (0: from now)
	Create gdpm.CreateRequest
	Logs   gdpm.LogsOptions
	Times  bool // logs: print each line's capture time
}

// usageError is a command line that cannot run: run prints it with the
// usage line of its topic and exits 2.
type usageError struct {
	topic string
	msg   string
}

func (e *usageError) Error() string { return e.msg }

func usagef(topic, format string, args ...any) *usageError {
	return &usageError{topic: topic, msg: fmt.Sprintf(format, args...)}
}

// flagDef describes one flag. Flags are one namespace for every verb, so
// they can come before the verb, between positional words or after them;
// verbs lists where a flag applies (nil: every verb).
type flagDef struct {
	value bool // takes a value: -name V or -name=V; otherwise a switch, -name or -name=BOOL
	verbs []string
}

var flagDefs = map[string]flagDef{
	"addr":         {value: true},
	"token":        {value: true},
	"ca-hash":      {value: true},
	"tls-ca":       {value: true},
	"o":            {value: true},
	"h":            {},
	"help":         {},
	"r":            {value: true, verbs: []string{"create", "update"}},
	"replicas":     {value: true, verbs: []string{"create", "update"}}, // the original CLI's -r
	"name":         {value: true, verbs: []string{"create"}},
	"e":            {value: true, verbs: []string{"create"}},
	"dir":          {value: true, verbs: []string{"create"}},
	"restart":      {value: true, verbs: []string{"create"}},
	"stop-timeout": {value: true, verbs: []string{"create"}},
	"since":        {value: true, verbs: []string{"events"}},
	"f":            {verbs: []string{"logs"}},
	"n":            {value: true, verbs: []string{"logs"}},
	"instance":     {value: true, verbs: []string{"logs"}},
	"t":            {verbs: []string{"logs"}},
	"w":            {verbs: []string{"get"}},
}

var verbs = []string{"get", "create", "apply", "diff", "update", "scale", "stop", "start", "restart", "delete", "logs", "events", "version", "completion", "help"}

// fileVerbs take -f FILE, where logs takes -f as a switch.
var fileVerbs = []string{"apply", "diff"}

type flagValue struct {
	name, value string
}

// words is a command line split into flags and positional words. A switch
// other than -h is a flag with the value "true" or "false".
type words struct {
	pos   []string
	flags []flagValue
	help  bool
	err   *usageError // the first malformed flag, if any
}

// split separates flags from positional words. A word starting with "-"
// (but not "-" itself) is a flag until "--"; every word after "--" is
// positional. A flag that takes a value takes the next word even when it
// starts with "-", so "-r -1" is a bad count rather than two flags.
func split(args []string) words {
	w := splitWith(args, false)
	if len(w.pos) > 0 && slices.Contains(fileVerbs, w.pos[0]) {
		w = splitWith(args, true)
	}
	return w
}

// splitWith is split with -f taking a value (fileValue) or not.
func splitWith(args []string, fileValue bool) words {
	var w words
	fail := func(format string, a ...any) {
		if w.err == nil {
			w.err = usagef("", format, a...)
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			w.pos = append(w.pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			w.pos = append(w.pos, a)
			continue
		}
		name := strings.TrimPrefix(a[1:], "-")
		name, value, hasValue := strings.Cut(name, "=")
		def, ok := flagDefs[name]
		if name == "f" && fileValue {
			def = flagDef{value: true, verbs: fileVerbs}
		}
		switch {
		case !ok:
			fail("unknown flag %s", a)
		case !def.value:
			on := true
			if hasValue {
				var err error
				if on, err = strconv.ParseBool(value); err != nil {
					fail("flag -%s takes no value, got %q", name, value)
				}
			}
			if name == "h" || name == "help" {
				w.help = w.help || on
			} else {
				w.flags = append(w.flags, flagValue{name, strconv.FormatBool(on)})
			}
		case hasValue:
			w.flags = append(w.flags, flagValue{name, value})
		case i+1 < len(args):
			i++
			w.flags = append(w.flags, flagValue{name, args[i]})
		default:
			fail("flag -%s needs a value", name)
		}
	}
	return w
}

// parse turns a command line into a command. getenv supplies GDPM_ADDR and
// GDPM_TOKEN, which flags override.
func parse(args []string, getenv func(string) string) (command, error) {
	w := split(args)
	verb := ""
	if len(w.pos) > 0 {
		verb = w.pos[0]
	}
	known := slices.Contains(verbs, verb)
	if w.help {
		if !known || verb == "help" {
			verb = ""
		}
		return command{Kind: kindHelp, Topic: verb}, nil
	}
	switch {
	case verb == "":
		if w.err != nil {
			return command{}, w.err
		}
		return command{}, usagef("", "missing verb")
	case !known:
		return command{}, usagef("", "unknown verb %q", verb)
	}
	if w.err != nil {
		w.err.topic = verb
		if verb == "create" && strings.HasPrefix(w.err.msg, "unknown flag") {
			w.err.msg += ` (put "--" before a command that has words starting with "-")`
		}
		return command{}, w.err
	}

	cmd := command{Topic: verb, Addr: getenv("GDPM_ADDR"), Token: getenv("GDPM_TOKEN"), CAHash: getenv("GDPM_CA_HASH"), TLSCA: getenv("GDPM_TLS_CA"), Output: outTable}
	addrFrom := "GDPM_ADDR"
	nSet := false
	for _, f := range w.flags {
		if v := flagDefs[f.name].verbs; v != nil && !slices.Contains(v, verb) && !(f.name == "f" && slices.Contains(fileVerbs, verb)) {
			return command{}, usagef(verb, "flag -%s does not apply to %q", f.name, verb)
		}
		var err *usageError
		switch f.name {
		case "addr":
			cmd.Addr, addrFrom = f.value, "-addr"
		case "token":
			cmd.Token = f.value
		case "ca-hash":
			cmd.CAHash = f.value
		case "tls-ca":
			cmd.TLSCA = f.value
		case "o":
			if f.value != outTable && f.value != outJSON && f.value != outYAML {
				err = usagef(verb, "-o must be table, json or yaml, got %q", f.value)
			}
			cmd.Output = f.value
		case "r", "replicas":
			cmd.N, err = parseCount(verb, f.value)
			nSet = true
		case "name":
			cmd.Create.Name = f.value
		case "e":
			err = addEnv(&cmd.Create, f.value)
		case "dir":
			if !path.IsAbs(f.value) {
				err = usagef(verb, "-dir must be an absolute path (a directory on the nodes), got %q", f.value)
			}
			cmd.Create.Dir = f.value
		case "restart":
			cmd.Create.Restart = gdpm.RestartPolicy(f.value)
			switch cmd.Create.Restart {
			case gdpm.RestartAlways, gdpm.RestartOnFailure, gdpm.RestartNever:
			default:
				err = usagef(verb, "-restart must be always, on-failure or never, got %q", f.value)
			}
		case "since":
			cmd.Since, err = parseSince(f.value)
		case "f":
			if slices.Contains(fileVerbs, verb) {
				cmd.File = f.value
				break
			}
			cmd.Logs.Follow = f.value == "true"
		case "n":
			cmd.Logs.Tail, err = parseTail(f.value)
		case "w":
			cmd.Watch = f.value == "true"
		case "t":
			cmd.Times = f.value == "true"
		case "instance":
			if strings.TrimSpace(f.value) == "" {
				err = usagef(verb, "-instance ID is empty")
			}
			cmd.Logs.Instance = f.value
		case "stop-timeout":
			var d time.Duration
			d, err = parseTimeout(verb, f.value)
			cmd.Create.StopTimeout = gdpm.Duration(d)
		}
		if err != nil {
			err.topic = verb
			return command{}, err
		}
	}

	args = w.pos[1:]
	switch verb {
	case "help":
		if len(args) > 1 {
			return command{}, usagef(verb, "too many arguments: %q", args[1:])
		}
		topic := ""
		if len(args) == 1 {
			if !slices.Contains(verbs, args[0]) {
				return command{}, usagef(verb, "no help for %q: verbs are %s", args[0], strings.Join(verbs, ", "))
			}
			if args[0] != "help" {
				topic = args[0]
			}
		}
		return command{Kind: kindHelp, Topic: topic}, nil
	case "version":
		if len(args) > 0 {
			return command{}, usagef(verb, "unexpected argument %q", args[0])
		}
		cmd.Kind = kindVersion
		return cmd, nil
	case "completion":
		switch {
		case len(args) == 0:
			return command{}, usagef(verb, "missing the shell: %s", strings.Join(shells, ", "))
		case len(args) > 1:
			return command{}, usagef(verb, "unexpected argument %q", args[1])
		case !slices.Contains(shells, args[0]):
			return command{}, usagef(verb, "no completion for shell %q: use %s", args[0], strings.Join(shells, ", "))
		}
		cmd.Kind, cmd.ID = kindCompletion, args[0]
		return cmd, nil
	case "get":
		if err := parseGet(&cmd, args); err != nil {
			return command{}, err
		}
	case "create":
		if len(args) == 0 {
			return command{}, usagef(verb, "missing COMMAND to run")
		}
		cmd.Kind = kindCreate
		cmd.Create.Command = joinCommand(args)
		if strings.TrimSpace(cmd.Create.Command) == "" {
			return command{}, usagef(verb, "COMMAND is empty")
		}
		n := 1
		if nSet {
			n = cmd.N
		}
		cmd.N = n
		cmd.Create.InstanceNum = &n
	case "update":
		if !nSet {
			return command{}, usagef(verb, "missing -r N: the number of instances to scale to")
		}
		cmd.Kind = kindUpdate
		if err := oneID(&cmd, args, "service"); err != nil {
			return command{}, err
		}
	case "logs":
		cmd.Kind = kindLogs
		if err := oneID(&cmd, args, "service"); err != nil {
			return command{}, err
		}
	case "events":
		if len(args) > 0 {
			return command{}, usagef(verb, "unexpected argument %q", args[0])
		}
		cmd.Kind = kindEvents
	case "delete", "stop", "start", "restart":
		cmd.Kind = map[string]kind{"delete": kindDelete, "stop": kindStop, "start": kindStart, "restart": kindRestart}[verb]
		if len(args) == 0 {
			return command{}, usagef(verb, "missing SERVICE: a name, an id or an id prefix")
		}
		for _, a := range args {
			if strings.TrimSpace(a) == "" {
				return command{}, usagef(verb, "SERVICE is empty")
			}
		}
		cmd.IDs = args
	case "scale":
		if len(args) != 2 {
			return command{}, usagef(verb, "expected SERVICE and N, got %q", args)
		}
		n, err := parseCount(verb, args[1])
		if err != nil {
			return command{}, err
		}
		cmd.Kind, cmd.ID, cmd.N = kindUpdate, args[0], n
	case "apply", "diff":
		cmd.Kind = kindApply
		if verb == "diff" {
			cmd.Kind = kindDiff
		}
		if cmd.File == "" {
			return command{}, usagef(verb, "missing -f FILE (or -f - for stdin)")
		}
		if len(args) > 0 {
			return command{}, usagef(verb, "unexpected argument %q", args[0])
		}
	}
	if cmd.Output == outYAML && cmd.Kind != kindGetService && cmd.Kind != kindGetServices {
		return command{}, usagef(verb, "-o yaml is for get service and get services (an appliable spec file)")
	}
	if cmd.CAHash != "" || cmd.TLSCA != "" {
		// A CA to trust means a secured master: https:// unless said
		// otherwise.
		if cmd.Addr == "" {
			cmd.Addr = strings.Replace(gdpm.DefaultClientAddr, "http://", "https://", 1)
		} else if !strings.Contains(cmd.Addr, "://") {
			cmd.Addr = "https://" + cmd.Addr
		}
	}
	if cmd.Addr == "" {
		cmd.Addr = gdpm.DefaultClientAddr
	}
	if cmd.CAHash != "" {
		if _, err := gdpm.ParseCAHash(cmd.CAHash); err != nil {
			return command{}, usagef(verb, "-ca-hash (or GDPM_CA_HASH) must be sha256: and 64 hex digits, as the master prints it")
		}
	}
	if _, err := gdpm.NewClient(gdpm.ClientConfig{Addr: cmd.Addr, Token: cmd.Token, CAHash: cmd.CAHash}); err != nil {
		msg := strings.TrimPrefix(err.Error(), gdpm.ErrInvalidConfig.Error()+": ")
		if strings.HasPrefix(msg, "Token") {
			return command{}, usagef(verb, "the token (-token or GDPM_TOKEN) contains a control character")
		}
		return command{}, usagef(verb, "bad %s: %s", addrFrom, msg)
	}
	return cmd, nil
}

func parseGet(cmd *command, args []string) error {
	if len(args) == 0 {
		return usagef("get", "missing what to get: nodes, node ID, services or service ID")
	}
	what, rest := args[0], args[1:]
	switch what {
	case "nodes", "services":
		if len(rest) > 0 {
			return usagef("get", "get %s takes no ID, got %q (use 'get %s ID')", what, rest[0], strings.TrimSuffix(what, "s"))
		}
		cmd.Kind = kindGetNodes
		if what == "services" {
			cmd.Kind = kindGetServices
		}
		return nil
	case "node", "service":
		cmd.Kind = kindGetNode
		if what == "service" {
			cmd.Kind = kindGetService
		}
		if len(rest) == 0 {
			return usagef("get", "get %s: missing %s ID (use 'get %ss' to list them)", what, what, what)
		}
		return oneID(cmd, rest, what)
	}
	return usagef("get", "cannot get %q: use nodes, node ID, services or service ID", what)
}

func oneID(cmd *command, args []string, what string) error {
	switch {
	case len(args) == 0:
		return usagef(cmd.Topic, "missing %s ID", what)
	case len(args) > 1:
		return usagef(cmd.Topic, "expected one %s ID, got %d: %q", what, len(args), args)
	case strings.TrimSpace(args[0]) == "":
		return usagef(cmd.Topic, "%s ID is empty", what)
	}
	cmd.ID = args[0]
	return nil
}

func parseSince(s string) (int64, *usageError) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, usagef("events", "-since must be an event Revision (a whole number, 0 or more), got %q", s)
	}
	return n, nil
}

// parseTail reads logs' -n: N lines, 0 none. LogsOptions.Tail says none
// with a negative number, 0 being the master's default.
func parseTail(s string) (int, *usageError) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, usagef("logs", "-n must be a whole number of lines, 0 or more, got %q", s)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}

func parseCount(verb, s string) (int, *usageError) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, usagef(verb, "-r must be a whole number of instances, 0 or more, got %q", s)
	}
	return n, nil
}

// parseTimeout reads a Go duration ("10s", "1m30s") or a number of seconds,
// as the API does.
func parseTimeout(verb, s string) (time.Duration, *usageError) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, usagef(verb, "-stop-timeout must be a duration such as 10s or 1m30s, got %q", s)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, usagef(verb, "-stop-timeout must not be negative, got %q", s)
	}
	return d, nil
}

func addEnv(req *gdpm.CreateRequest, kv string) *usageError {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return usagef("create", "-e must be KEY=VALUE, got %q", kv)
	}
	if strings.ContainsRune(kv, 0) {
		return usagef("create", "-e %q contains a NUL byte", k)
	}
	if req.Env == nil {
		req.Env = map[string]string{}
	}
	req.Env[k] = v
	return nil
}

// joinCommand makes the service's command line from create's words. One
// word is taken as it is: a whole shell command line the node runs with
// /bin/sh. Several words are joined with spaces, single-quoting any word
// that the shell would otherwise split or expand, so that
// `create -- sh -c 'exit 3'` runs sh with the two arguments it was given.
func joinCommand(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
