package gdpm

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Supervision is the part of a spec that watches and bounds an instance:
// its health check, its restart limit and its resource limits. Every field
// is optional; the zero value supervises as gdpm always did (no check,
// unlimited restarts, no limits). It is embedded in Spec and
// CreateRequest, so its fields are top-level fields of the JSON and YAML.
type Supervision struct {
	// Check is the instance's health check; nil means none (Health
	// "none").
	Check *HealthCheck `json:"Check,omitempty"`
	// MaxRestarts, when positive, is how many restarts an instance may
	// make within RestartWindow: the next exit leaves it down (state
	// exited, "restart limit reached"), and the service failed, until the
	// service is restarted or updated. Zero means unlimited.
	MaxRestarts int `json:"MaxRestarts,omitempty"`
	// RestartWindow is the span MaxRestarts counts over; default
	// DefaultRestartWindow.
	RestartWindow Duration `json:"RestartWindow,omitempty"`
	// MemoryLimit caps the memory of the instance's processes (bytes, or
	// "64MiB"), enforced by a cgroup; the kernel kills the instance (an
	// "oom" exit) past it. Zero means no limit.
	MemoryLimit ByteSize `json:"MemoryLimit,omitempty"`
	// CPULimit caps the CPU time of the instance's processes, in cores
	// (0.5 is half a core), enforced by a cgroup's CPU quota. Zero means
	// no limit.
	CPULimit float64 `json:"CPULimit,omitempty"`
	// Rlimits are resource limits set in the child before it runs the
	// command, soft and hard: NOFILE (open files).
	Rlimits map[string]uint64 `json:"Rlimits,omitempty"`
}

// HealthCheck says how a slave checks that an instance works. Exactly one of
// Exec, HTTP and TCP is set; ${VAR} and $VAR in it are expanded from the
// instance's environment (GDPM_PORT_HTTP, say).
type HealthCheck struct {
	// Exec is a command run like the service's (with /bin/sh when it has
	// shell syntax) in the instance's environment and working dir; exit
	// status 0 is healthy.
	Exec string `json:"Exec,omitempty"`
	// HTTP is a URL to GET; a 2xx or 3xx answer is healthy (redirects are
	// not followed).
	HTTP string `json:"HTTP,omitempty"`
	// TCP is a HOST:PORT to connect to; a connection is healthy.
	TCP string `json:"TCP,omitempty"`
	// Interval is the time between checks; default DefaultCheckInterval.
	Interval Duration `json:"Interval,omitempty"`
	// Timeout bounds one check; default DefaultCheckTimeout.
	Timeout Duration `json:"Timeout,omitempty"`
	// Grace is how long after each start failures do not count; default
	// DefaultCheckGrace.
	Grace Duration `json:"Grace,omitempty"`
	// Failures is how many checks in a row must fail to make the instance
	// unhealthy; default DefaultCheckFailures.
	Failures int `json:"Failures,omitempty"`
	// OnUnhealthy is what the slave does with an unhealthy instance:
	// "restart" (the default) replaces its process, "none" only reports.
	OnUnhealthy string `json:"OnUnhealthy,omitempty"`
}

// OnUnhealthy values.
const (
	OnUnhealthyRestart = "restart"
	OnUnhealthyNone    = "none"
)

// Health is an instance's health as its slave last judged it.
type Health string

// The health values.
const (
	HealthNone      Health = "none"      // the service has no check
	HealthStarting  Health = "starting"  // no verdict yet: within Grace, or no check has passed yet
	HealthHealthy   Health = "healthy"   // the last check passed
	HealthUnhealthy Health = "unhealthy" // Failures checks in a row failed
)

func (c HealthCheck) interval() time.Duration {
	return orDefault(time.Duration(c.Interval), DefaultCheckInterval)
}
func (c HealthCheck) timeout() time.Duration {
	return orDefault(time.Duration(c.Timeout), DefaultCheckTimeout)
}
func (c HealthCheck) grace() time.Duration {
	if c.Grace < 0 {
		return 0
	}
	return orDefault(time.Duration(c.Grace), DefaultCheckGrace)
}
func (c HealthCheck) failures() int { return orDefault(c.Failures, DefaultCheckFailures) }
func (c HealthCheck) restarts() bool {
	return c.OnUnhealthy == "" || c.OnUnhealthy == OnUnhealthyRestart
}

func (s Supervision) restartWindow() time.Duration {
	return orDefault(time.Duration(s.RestartWindow), DefaultRestartWindow)
}

// rlimitNames are the limits Rlimits takes, with their resource numbers.
// Only NOFILE for now: the child sets it with the shell's ulimit -n,
// whose meaning is the same in every /bin/sh (see wrapArgv).
var rlimitNames = map[string]int{
	"NOFILE": 7,
}

// check validates the supervision fields; the message names the field.
func (s Supervision) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf(format+": %w", append(args, ErrBadRequest)...)
	}
	if c := s.Check; c != nil {
		set := 0
		for _, v := range []string{c.Exec, c.HTTP, c.TCP} {
			if strings.TrimSpace(v) != "" {
				set++
			}
			if strings.ContainsRune(v, 0) {
				return bad("Check contains a NUL byte")
			}
		}
		if set != 1 {
			return bad("Check needs exactly one of Exec, HTTP and TCP")
		}
		if c.HTTP != "" && !strings.HasPrefix(c.HTTP, "http://") && !strings.HasPrefix(c.HTTP, "https://") {
			return bad("Check.HTTP must be an http:// or https:// URL, got %q", c.HTTP)
		}
		if len(c.Exec)+len(c.HTTP)+len(c.TCP) > MaxCommandBytes {
			return bad("Check is over %d bytes", MaxCommandBytes)
		}
		for name, d := range map[string]Duration{"Interval": c.Interval, "Timeout": c.Timeout} {
			if d < 0 || time.Duration(d) > time.Hour || (d > 0 && time.Duration(d) < 10*time.Millisecond) {
				return bad("Check.%s must be between 10ms and 1h", name)
			}
		}
		if c.Grace < 0 || time.Duration(c.Grace) > time.Hour {
			return bad("Check.Grace must be between 0 and 1h")
		}
		if c.Failures < 0 || c.Failures > 1000 {
			return bad("Check.Failures must be between 1 and 1000")
		}
		if c.OnUnhealthy != "" && c.OnUnhealthy != OnUnhealthyRestart && c.OnUnhealthy != OnUnhealthyNone {
			return bad("Check.OnUnhealthy must be restart or none, got %q", c.OnUnhealthy)
		}
	}
	if s.MaxRestarts < 0 {
		return bad("MaxRestarts must not be negative")
	}
	if s.RestartWindow < 0 || time.Duration(s.RestartWindow) > 24*time.Hour {
		return bad("RestartWindow must be between 0 and 24h")
	}
	if s.MemoryLimit < 0 || (s.MemoryLimit > 0 && s.MemoryLimit < MinMemoryLimit) {
		return bad("MemoryLimit must be at least 1MiB, got %d bytes", int64(s.MemoryLimit))
	}
	if s.CPULimit < 0 || (s.CPULimit > 0 && s.CPULimit < MinCPULimit) || s.CPULimit > 1024 {
		return bad("CPULimit must be between %.2f and 1024 cores, got %g", MinCPULimit, s.CPULimit)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Rlimits)) {
		if _, ok := rlimitNames[name]; !ok {
			return bad("Rlimits: unknown limit %q; the limits are %s", name, strings.Join(slices.Sorted(maps.Keys(rlimitNames)), ", "))
		}
		if v := s.Rlimits[name]; v == 0 || v > 1<<30 {
			return bad("Rlimits: %s must be between 1 and %d, got %d", name, 1<<30, v)
		}
	}
	return nil
}

// ByteSize is a count of bytes that reads JSON as a number or as a string
// with a unit: "64MiB", "1.5GiB", "512k", "100MB" (powers of 1024 for the
// binary units and for the single letters, of 1000 for KB, MB, GB).
type ByteSize int64

// UnmarshalJSON reads 67108864 or "64MiB".
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		v, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		*b = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("a size must be a number of bytes or a string like \"64MiB\"")
	}
	*b = ByteSize(n)
	return nil
}

// String writes the size with the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

var byteUnits = map[string]float64{
	"": 1, "B": 1,
	"K": 1 << 10, "KI": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
	"M": 1 << 20, "MI": 1 << 20, "MIB": 1 << 20, "MB": 1e6,
	"G": 1 << 30, "GI": 1 << 30, "GIB": 1 << 30, "GB": 1e9,
	"T": 1 << 40, "TI": 1 << 40, "TIB": 1 << 40, "TB": 1e12,
}

// ParseByteSize reads a size such as "64MiB", "512k" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	}
	f, err := strconv.ParseFloat(num, 64)
	mult, ok := byteUnits[unit]
	if err != nil || !ok || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("bad size %q: want bytes or a number with KiB, MiB, GiB", s)
	}
	return ByteSize(f * mult), nil
}

// limited reports whether the spec asks for a cgroup.
func (s Supervision) limited() bool { return s.MemoryLimit > 0 || s.CPULimit > 0 }

// UnmarshalJSON reads a check strictly: an unknown key ("Http", "Cmd") is
// an error, not a check that silently does nothing.
func (c *HealthCheck) UnmarshalJSON(data []byte) error {
	type plain HealthCheck
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return fmt.Errorf("Check must be an object: %v", err)
	}
	for k := range keys {
		// encoding/json matches keys in any case; the API does not.
		if !checkFields[k] {
			return fmt.Errorf("Check: unknown field %q; the fields are %s", k, strings.Join(slices.Sorted(maps.Keys(checkFields)), ", "))
		}
	}
	var v plain
	if err := strictJSON(data, &v); err != nil {
		return fmt.Errorf("Check: %v", err)
	}
	*c = HealthCheck(v)
	return nil
}

// checkFields are the keys of a Check object.
var checkFields = jsonFields(reflect.TypeFor[HealthCheck]())
