package gdpm

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Whether a failed etcd write happened. A write that failed before its
// request left this process changed nothing: the API answers 503. One
// that was sent and then timed out, or whose connection broke, may have
// been applied: the API answers 504 and says the outcome is unknown, so a
// client neither believes nothing happened nor retries into a duplicate
// (idempotency.go makes a retried create safe).
//
// The etcd client's gRPC stats handler (sentTracker) marks a request as
// sent when its payload is handed to the transport: from then on the
// outcome is unknown. That may call a request sent that never reached the
// wire, never the other way round.

type sentKey struct{}

// sentFlag is set once any request made with its context was sent.
type sentFlag struct{ sent atomic.Bool }

// withSentFlag returns ctx carrying a new flag for the etcd calls made with it.
func withSentFlag(ctx context.Context) (context.Context, *sentFlag) {
	f := &sentFlag{}
	return context.WithValue(ctx, sentKey{}, f), f
}

// sentTracker is the etcd client's gRPC stats handler.
type sentTracker struct{}

func (sentTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (sentTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutPayload); ok {
		if f, ok := ctx.Value(sentKey{}).(*sentFlag); ok {
			f.sent.Store(true)
		}
	}
}

func (sentTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (sentTracker) HandleConn(context.Context, stats.ConnStats)                       {}

// writeErr classifies a failed etcd write made with sent's context: a
// request that never left, or that etcd refused outright, changed nothing
// (storeErr: ErrUnavailable); any other failure after sending is
// ErrOutcomeUnknown.
func writeErr(op string, sent *sentFlag, err error) error {
	if err == nil {
		return nil
	}
	if !sent.sent.Load() || definiteRefusal(err) {
		return storeErr(op, err)
	}
	return fmt.Errorf("%s: %w: the request was sent to etcd but no answer came (%v), so it may or may not have been applied: read the state to find out, or retry with the same Idempotency-Key", op, ErrOutcomeUnknown, err)
}

// definiteRefusal reports whether etcd answered err itself, refusing the
// request before applying it (too large, too many operations, an unknown
// lease, a failed precondition), rather than the call timing out or its
// connection breaking.
func definiteRefusal(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted, codes.PermissionDenied,
		codes.Unauthenticated, codes.OutOfRange, codes.NotFound, codes.AlreadyExists, codes.Unimplemented:
		return true
	}
	return false
}
