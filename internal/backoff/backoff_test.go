package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayDoublesUpToTheCapAndResets(t *testing.T) {
	d := NewDelay(time.Millisecond, 4*time.Millisecond)
	var got []time.Duration
	for range 4 {
		got = append(got, d.cur)
		if !d.Wait(context.Background()) {
			t.Fatal("Wait returned false without a cancelled context")
		}
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	d.Reset()
	if d.cur != time.Millisecond {
		t.Fatalf("after Reset the delay is %v, want 1ms", d.cur)
	}
}

func TestDelayWaitEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if NewDelay(time.Hour, time.Hour).Wait(ctx) {
		t.Fatal("Wait returned true with a cancelled context")
	}
}
