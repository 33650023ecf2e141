package gdpm

import (
	"net"
	"net/http"
	"sync"
)

// freshConns tracks an http.Server's connections that have not sent a
// request yet. Server.Shutdown waits for those for 5 s before it treats
// them as idle, and Go's HTTP client leaves exactly such connections
// behind: under concurrency it dials spares that a freed connection then
// makes unnecessary, and parks them unused. A master closed after a burst
// of requests timed out in Shutdown because of them. Nothing was asked on
// a fresh connection, so closing it on shutdown loses nothing.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track installs the tracker on srv, keeping any ConnState hook it had.
func (f *freshConns) track(srv *http.Server) {
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		f.mu.Lock()
		if st == http.StateNew {
			if f.conns == nil {
				f.conns = make(map[net.Conn]struct{})
			}
			f.conns[c] = struct{}{}
		} else {
			delete(f.conns, c)
		}
		f.mu.Unlock()
		if prev != nil {
			prev(c, st)
		}
	}
}

// closeAll closes every connection that has not sent a request.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
		delete(f.conns, c)
	}
}
