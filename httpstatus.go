package gdpm

import (
	"errors"
	"net/http"
)

// statusTable is the one mapping between the API's HTTP statuses and the
// sentinel errors: the master answers an error with the status of the
// first sentinel it wraps, and the client's APIError unwraps a status to
// the first sentinel listed with it. More specific sentinels come first.
//
// What each status promises about the state (the README says the same):
// 4xx and 503 mean nothing was written; 504 means the write may or may
// not have happened.
var statusTable = []struct {
	err    error
	status int
}{
	{ErrTooLarge, http.StatusRequestEntityTooLarge},
	{ErrUnsupportedMedia, http.StatusUnsupportedMediaType},
	{ErrBadRequest, http.StatusBadRequest},
	{ErrUnauthorized, http.StatusUnauthorized},
	{ErrForbidden, http.StatusForbidden},
	{ErrNotFound, http.StatusNotFound},
	{ErrConflict, http.StatusConflict},
	{ErrUnavailable, http.StatusServiceUnavailable},
	{ErrOutcomeUnknown, http.StatusGatewayTimeout},
}

// statusOf is the HTTP status for err: that of the first sentinel in
// statusTable it wraps, else 500.
func statusOf(err error) int {
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

// errorOf is the sentinel error for an HTTP status, or nil.
func errorOf(status int) error {
	for _, e := range statusTable {
		if e.status == status {
			return e.err
		}
	}
	return nil
}
