package gdpm

import "errors"

// Sentinel errors. Callers match them with errors.Is; the library wraps them
// with context using fmt.Errorf("...: %w").
var (
	// ErrInvalidConfig is returned by the New* constructors for a config
	// that cannot work.
	ErrInvalidConfig = errors.New("gdpm: invalid config")

	// ErrUnsupportedOS is returned by NewSlave on a system other than
	// Linux: a slave supervises its processes with pidfds, epoll, process
	// groups and /proc. Masters and clients run anywhere.
	ErrUnsupportedOS = errors.New("gdpm: slaves run on Linux only")

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

	// ErrConflict is returned for a write that contradicts the stored
	// state: an Idempotency-Key reused with another request, or a write
	// that kept losing races with other writers after the master's own
	// retries. Nothing was written.
	ErrConflict = errors.New("gdpm: conflicting update")

	// ErrForbidden is returned for a request the master refuses whatever
	// the token: a browser request from an origin that is not allowed.
	ErrForbidden = errors.New("gdpm: forbidden")

	// ErrTooLarge is returned for a body, or input over one of the size
	// limits in limits.go; the API answers 413. It is also an
	// ErrBadRequest.
	ErrTooLarge error = &subError{"gdpm: too large", ErrBadRequest}

	// ErrUnsupportedMedia is returned for a body in an encoding or a
	// content type the API does not read. It is also an ErrBadRequest.
	ErrUnsupportedMedia error = &subError{"gdpm: unsupported media type", ErrBadRequest}

	// ErrOutcomeUnknown is returned when a write was sent to etcd but no
	// answer came back in time: it may or may not have been applied. Read
	// the state, or retry with the same Idempotency-Key, to find out.
	ErrOutcomeUnknown = errors.New("gdpm: outcome unknown")

	// ErrNameTaken is returned when a service is created with a name
	// another service has; the API answers 409. It is also an
	// ErrConflict.
	ErrNameTaken error = &subError{"gdpm: name taken", ErrConflict}
)

// subError is a sentinel that is also a more general one, so that
// errors.Is(ErrTooLarge, ErrBadRequest) holds.
type subError struct {
	msg    string
	parent error
}

func (e *subError) Error() string { return e.msg }
func (e *subError) Unwrap() error { return e.parent }
