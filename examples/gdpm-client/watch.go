package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/capy-pl/gdpm"
)

// Watch timing: a redraw waits for the events to pause for watchQuiet (a
// scale is a placement and a start per instance), but never longer than
// watchMaxDelay after the first of them.
const (
	watchQuiet    = 200 * time.Millisecond
	watchMaxDelay = time.Second
	watchRetryMax = 10 * time.Second
)

// clearScreen moves the cursor home and clears a terminal: each frame of a
// watch replaces the one before.
const clearScreen = "\x1b[H\x1b[2J"

// get runs one of the get verbs and prints its result.
func get(ctx context.Context, c api, cmd command, w io.Writer) error {
	asJSON := cmd.Output == outJSON
	switch cmd.Kind {
	case kindGetNodes:
		l, err := c.Nodes(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, l)
		}
		return renderNodes(w, l)
	case kindGetNode:
		s, err := c.Node(ctx, cmd.ID)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, s)
		}
		return renderNode(w, s)
	case kindGetServices:
		list, err := c.Services(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, gdpm.ServiceList{Services: list})
		}
		if cmd.Output == outYAML {
			return writeSpecs(ctx, c, list, w)
		}
		return renderServices(w, list, clock())
	case kindGetService:
		d, err := c.Service(ctx, cmd.ID)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, d)
		}
		if cmd.Output == outYAML {
			b, err := gdpm.MarshalSpecFile(gdpm.SpecOf(d.Service))
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}
		return renderService(w, d, time.Local)
	}
	return fmt.Errorf("internal error: %q is not a get verb", cmd.Topic)
}

// isTerminal reports whether w is a terminal, where a watch clears the
// screen between frames; elsewhere (a pipe, a file) frames follow each
// other, each under a header line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// watch prints the get verb's result, then prints it again after every
// burst of cluster events (GET /events), until ctx ends, which is the
// normal end: it does not poll. The stream is opened before the first
// read, so no change between the two is missed. When the stream breaks,
// watch resumes after the last revision it saw, retrying until the master
// answers again; a frame whose read fails shows the error and the watch
// goes on.
func watch(ctx context.Context, c api, cmd command, w io.Writer) error {
	s, err := c.Events(ctx, 0)
	if err != nil {
		return err
	}
	tty := isTerminal(w)
	rev := s.Revision()
	frame := func(note string) error {
		var b bytes.Buffer
		if cmd.Output != outJSON {
			if tty {
				b.WriteString(clearScreen)
			}
			fmt.Fprintf(&b, "Every event: gdpm-client %s  (revision %d, %s)\n", describe(cmd), rev, time.Now().Format("15:04:05 MST"))
			if note != "" {
				fmt.Fprintf(&b, "%s\n", note)
			}
			b.WriteString("\n")
		}
		if err := get(ctx, c, cmd, &b); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(&b, "gdpm-client: %s\n", err)
		}
		if !tty && cmd.Output != outJSON {
			b.WriteString("\n")
		}
		_, err := w.Write(b.Bytes())
		return err
	}

	// The reader owns the stream (it is not safe for concurrent use)
	// until it has ended: it passes on that an event came, and its
	// revision.
	events := make(chan struct{}, 1)
	ended := make(chan error, 1)
	var seen atomic.Int64
	read := func(s *gdpm.EventStream, done chan struct{}) {
		defer close(done)
		for {
			ev, err := s.Next()
			if err != nil {
				ended <- err
				return
			}
			seen.Store(max(seen.Load(), ev.Revision))
			select {
			case events <- struct{}{}:
			default:
			}
		}
	}
	done := make(chan struct{})
	go read(s, done)
	defer func() {
		s.Close()
		<-done
	}()
	if err := frame(""); err != nil {
		return err
	}

	var timer <-chan time.Time
	var first time.Time
	redrawSoon := func() {
		now := time.Now()
		if timer == nil {
			first = now
		}
		delay := min(watchQuiet, max(first.Add(watchMaxDelay).Sub(now), 0))
		timer = time.After(delay)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
			rev = max(rev, seen.Load())
			redrawSoon()
		case <-timer:
			timer = nil
			rev = max(rev, seen.Load())
			if err := frame(""); err != nil {
				return err
			}
		case <-ended:
			if ctx.Err() != nil {
				return nil
			}
			<-done
			rev = max(rev, s.Revision())
			next, note, err := reopen(ctx, c, rev)
			if err != nil {
				return nil // ctx ended while retrying
			}
			s = next
			rev = max(rev, s.Revision())
			done = make(chan struct{})
			go read(s, done)
			// What happened while the stream was down is only in a
			// fresh read.
			if err := frame(note); err != nil {
				return err
			}
		}
	}
}

// reopen opens the event stream again after revision rev, waiting longer
// between tries until it opens or ctx ends. A revision etcd no longer keeps
// starts the stream from now. The note says what happened, for the frame.
func reopen(ctx context.Context, c api, rev int64) (*gdpm.EventStream, string, error) {
	wait := 500 * time.Millisecond
	note := ""
	for {
		s, err := c.Events(ctx, rev)
		var apiErr *gdpm.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusGone {
			s, err = c.Events(ctx, 0)
		}
		if err == nil {
			if note != "" {
				note = "(the event stream broke and was resumed: " + note + ")"
			}
			return s, note, nil
		}
		note = err.Error()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, "", ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, watchRetryMax)
	}
}

// describe is the command line a watch shows in its header.
func describe(cmd command) string {
	switch cmd.Kind {
	case kindGetNodes:
		return "get nodes"
	case kindGetNode:
		return "get node " + cell(cmd.ID)
	case kindGetServices:
		return "get services"
	case kindGetService:
		return "get service " + cell(cmd.ID)
	}
	return cmd.Topic
}
