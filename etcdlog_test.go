package gdpm

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// The embedded etcd's own logs reach EmbeddedEtcdConfig.Logger, with their
// levels and fields.
func TestEmbeddedEtcdLogger(t *testing.T) {
	var buf testkit.SyncBuffer
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
