package gdpm

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// streamCutter ends an embedded etcd's client streams (watches, lease
// keepalives) when it closes. etcd's Close stops its gRPC server
// gracefully, which waits for every open stream, and only a client ends a
// watch: with slaves watching, Close took its whole request timeout (7 s)
// before stopping them by force, and 3 s more for the next server. The
// streams' handlers end when their context does, so a stream interceptor
// gives each one a context that cut cancels; streams opened after cut are
// refused as unavailable, which clients take as "try another endpoint".
type streamCutter struct {
	mu      sync.Mutex
	cut     bool
	cancels map[*context.CancelFunc]struct{}
}

func newStreamCutter() *streamCutter {
	return &streamCutter{cancels: map[*context.CancelFunc]struct{}{}}
}

// option is the gRPC server option to give etcd.
func (sc *streamCutter) option() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(sc.intercept)
}

func (sc *streamCutter) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	sc.mu.Lock()
	if sc.cut {
		sc.mu.Unlock()
		return status.Error(codes.Unavailable, "etcd is shutting down")
	}
	key := &cancel
	sc.cancels[key] = struct{}{}
	sc.mu.Unlock()
	defer func() {
		sc.mu.Lock()
		delete(sc.cancels, key)
		sc.mu.Unlock()
	}()
	return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// cutAll ends every open stream and refuses new ones.
func (sc *streamCutter) cutAll() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.cut = true
	for c := range sc.cancels {
		(*c)()
	}
}

// ctxStream is a server stream with its own context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
