package gdpm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// The embedded etcd's own logs reach EmbeddedEtcdConfig.Logger, with their
// levels and fields.
func TestEmbeddedEtcdLogger(t *testing.T) {
	var buf syncBuf
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	etcd, err := StartEmbeddedEtcd(ctx, EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	etcd.Close()
	out := buf.String()
	if !strings.Contains(out, "level=INFO") || !strings.Contains(out, "msg=") || strings.Contains(out, "level=DEBUG") {
		t.Fatalf("etcd's logs at info did not come through as expected:\n%.2000s", out)
	}
}
