package gdpm

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// HTTP helpers that the master's API (api*.go, events.go, masterlogs.go)
// and the slave's log server share: the token check, JSON answers and
// errors, and the write deadline of a stream.

// bearerOK reports whether r carries "Authorization: Bearer TOKEN"; any
// request does when token is empty. The scheme is case-insensitive (RFC
// 9110). The compare is of digests, so it takes the same time wherever the
// first difference is and whatever the lengths.
func bearerOK(r *http.Request, token string) bool {
	if token == "" {
		return true
	}
	scheme, got, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	want, have := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(strings.TrimLeft(got, " ")))
	return strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// apiMessage is err's text for a client, without the package prefixes that
// wrapping adds and without the "bad request" the status already says.
func apiMessage(err error) string {
	msg := strings.ReplaceAll(err.Error(), "gdpm: ", "")
	for _, sentinel := range []string{": bad request", ": too large", ": unsupported media type", ": name taken"} {
		msg = strings.TrimSuffix(msg, sentinel)
	}
	return msg
}

// streamWriteTimeout bounds one write to an event stream: a client that
// stops reading is dropped rather than holding a watch whose events pile up.
const streamWriteTimeout = 30 * time.Second
