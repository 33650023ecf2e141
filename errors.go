package gdpm

import "errors"

// Sentinel errors. Callers match them with errors.Is; the library wraps them
// with context using fmt.Errorf("...: %w").
var (
	// ErrInvalidConfig is returned by the New* constructors for a config
	// that cannot work.
	ErrInvalidConfig = errors.New("gdpm: invalid config")

	// ErrClosed is returned by calls on a master, slave or etcd that has
	// been closed.
	ErrClosed = errors.New("gdpm: closed")

	// ErrNotFound is returned when a service or node id is unknown.
	ErrNotFound = errors.New("gdpm: not found")

	// ErrBadRequest is returned for input the API rejects.
	ErrBadRequest = errors.New("gdpm: bad request")

	// ErrUnauthorized is returned when the cluster token is missing or wrong.
	ErrUnauthorized = errors.New("gdpm: unauthorized")

	// ErrUnavailable is returned when etcd cannot be reached in time.
	ErrUnavailable = errors.New("gdpm: state store unavailable")

	// ErrProtocol is returned for a registration exchange that is not the
	// gdpm protocol, or a version this side does not speak.
	ErrProtocol = errors.New("gdpm: protocol error")

	// ErrUntrusted is returned when a peer's TLS certificate does not chain
	// to the trusted cluster CA (a wrong -ca-hash pin, a foreign master).
	ErrUntrusted = errors.New("gdpm: untrusted peer")

	// ErrTooLarge is returned for input over one of the size limits in
	// limits.go; the API answers 413.
	ErrTooLarge = errors.New("gdpm: too large")

	// ErrConflict is returned when a write lost a race with another writer;
	// the caller may retry.
	ErrConflict = errors.New("gdpm: conflicting update")
)
