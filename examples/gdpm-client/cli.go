package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/capy-pl/gdpm"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1 // the request failed
	exitUsage       = 2 // the command line is wrong
	exitInterrupted = 130
	// diff, as diff(1) and kubectl diff: 0 no changes, 1 changes, 2
	// trouble (a usage error or a failed request).
	exitDiffers     = 1
	exitDiffTrouble = 2
)

// api is the part of *gdpm.Client the verbs use.
type api interface {
	Nodes(ctx context.Context) (gdpm.NodeList, error)
	Node(ctx context.Context, id string) (gdpm.NodeServices, error)
	Services(ctx context.Context) ([]gdpm.ServiceSummary, error)
	Service(ctx context.Context, id string) (gdpm.ServiceDetail, error)
	CreateService(ctx context.Context, req gdpm.CreateRequest) (string, error)
	ScaleService(ctx context.Context, id string, n int) error
	DeleteService(ctx context.Context, id string) error
	ApplyService(ctx context.Context, spec gdpm.CreateRequest) (gdpm.ApplyResult, error)
	StopService(ctx context.Context, id string) error
	StartService(ctx context.Context, id string) error
	RestartService(ctx context.Context, id string) error
	Events(ctx context.Context, since int64) (*gdpm.EventStream, error)
	Logs(ctx context.Context, service string, opts gdpm.LogsOptions) (*gdpm.LogStream, error)
}

var _ api = (*gdpm.Client)(nil)

func newAPI(cfg gdpm.ClientConfig) (api, error) { return gdpm.NewClient(cfg) }

// run is the whole program but for the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runWith(ctx, args, stdout, stderr, getenv, newAPI)
}

func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string,
	connect func(gdpm.ClientConfig) (api, error)) int {
	if len(args) > 0 && args[0] == completeVerb {
		return runComplete(ctx, args[1:], stdout, getenv, connect)
	}
	cmd, err := parse(args, getenv)
	if err != nil {
		var ue *usageError
		errors.As(err, &ue)
		fmt.Fprintf(stderr, "gdpm-client: %s\n%s\n", ue.msg, usageLines[ue.topic])
		hint := "gdpm-client -h"
		if ue.topic != "" {
			hint = "gdpm-client " + ue.topic + " -h"
		}
		fmt.Fprintf(stderr, "Run '%s' for help.\n", hint)
		return exitUsage
	}
	switch cmd.Kind {
	case kindHelp:
		io.WriteString(stdout, helpTexts[cmd.Topic])
		return exitOK
	case kindVersion:
		if cmd.Output == outJSON {
			err = writeJSON(stdout, map[string]string{"Version": gdpm.Version})
		} else {
			_, err = fmt.Fprintln(stdout, gdpm.Version)
		}
		return report(ctx, stderr, cmd, err)
	case kindCompletion:
		_, err = io.WriteString(stdout, completionScript(cmd.ID))
		return report(ctx, stderr, cmd, err)
	}
	cfg := gdpm.ClientConfig{Addr: cmd.Addr, Token: cmd.Token, CAHash: cmd.CAHash}
	if cmd.TLSCA != "" {
		if cfg.RootCAs, err = gdpm.LoadCertPool(cmd.TLSCA); err != nil {
			return report(ctx, stderr, cmd, err)
		}
	}
	c, err := connect(cfg)
	if err != nil {
		return report(ctx, stderr, cmd, err)
	}
	return report(ctx, stderr, cmd, execute(ctx, c, cmd, stdout))
}

// report prints err, if any, and returns the exit status for it.
func report(ctx context.Context, stderr io.Writer, cmd command, err error) int {
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "gdpm-client: interrupted")
		return exitInterrupted
	case errors.Is(err, errDiffers):
		return exitDiffers
	}
	msg := strings.TrimPrefix(err.Error(), "gdpm: ")
	switch {
	case errors.Is(err, gdpm.ErrUnauthorized):
		msg += "; give the cluster token with -token or GDPM_TOKEN"
	case errors.Is(err, gdpm.ErrUntrusted):
		msg += "; -ca-hash (GDPM_CA_HASH) must be the hash the master printed at start"
	case errors.Is(err, syscall.ECONNREFUSED):
		msg += "; is a gdpm-master serving there? Set its address with -addr or GDPM_ADDR"
	}
	fmt.Fprintf(stderr, "gdpm-client: %s\n", msg)
	if cmd.Kind == kindDiff {
		return exitDiffTrouble
	}
	return exitFailed
}

// execute runs one verb against the API and prints its result.
func execute(ctx context.Context, c api, cmd command, w io.Writer) error {
	asJSON := cmd.Output == outJSON
	shown := cmd.ID // what messages call the service: the user's name for it
	switch cmd.Kind {
	case kindGetService, kindUpdate, kindLogs:
		id, err := resolve(ctx, c, cmd.ID)
		if err != nil {
			return err
		}
		cmd.ID = id
	}
	switch cmd.Kind {
	case kindGetNodes, kindGetNode, kindGetServices, kindGetService:
		if cmd.Watch {
			return watch(ctx, c, cmd, w)
		}
		return get(ctx, c, cmd, w)
	case kindCreate:
		id, err := c.CreateService(ctx, cmd.Create)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, map[string]string{"ID": id})
		}
		_, err = fmt.Fprintln(w, id)
		return err
	case kindUpdate:
		if err := c.ScaleService(ctx, cmd.ID, cmd.N); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(w, map[string]any{"ID": cmd.ID, "InstanceNum": cmd.N})
		}
		if strings.HasPrefix(cmd.ID, shown) {
			shown = cmd.ID // an id or a prefix of it: the whole id
		}
		_, err := fmt.Fprintf(w, "service %s scaled to %d %s\n", cell(shown), cmd.N, plural(cmd.N, "instance"))
		return err
	case kindDelete, kindStop, kindStart, kindRestart:
		return lifecycle(ctx, c, cmd, w)
	case kindApply:
		return apply(ctx, c, cmd, w)
	case kindDiff:
		return diff(ctx, c, cmd, w)
	case kindEvents:
		return follow(ctx, c, cmd, w)
	case kindLogs:
		return logs(ctx, c, cmd, w)
	}
	return fmt.Errorf("internal error: no action for %q", cmd.Topic)
}

// follow prints the event stream, one event a line, until it ends:
// normally when ctx is cancelled (interrupted).
func follow(ctx context.Context, c api, cmd command, w io.Writer) error {
	s, err := c.Events(ctx, cmd.Since)
	if err != nil {
		var apiErr *gdpm.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusGone {
			return fmt.Errorf("%w; run without -since to follow from now", err)
		}
		return err
	}
	defer s.Close()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if cmd.Output != outJSON {
		if err := renderEventHeader(w); err != nil {
			return err
		}
	}
	for {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w; resume with -since %d", err, s.Revision())
		}
		if err != nil {
			return err
		}
		if cmd.Output == outJSON {
			err = enc.Encode(ev)
		} else {
			err = renderEvent(w, ev, time.Local)
		}
		if err != nil {
			return err
		}
	}
}

// logs prints a service's log lines as they come. Without -f it ends with
// the stream; with -f an interrupt is the normal end, and the master ending
// the stream is an error: it does so only when it stops or when no
// instance it follows is left on a live node (or none was placed).
func logs(ctx context.Context, c api, cmd command, w io.Writer) error {
	err := printLogs(ctx, c, cmd, w)
	switch {
	case !cmd.Logs.Follow:
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	case ctx.Err() != nil:
		return nil // interrupted: the user has seen what they wanted
	case errors.Is(err, io.EOF):
		return errors.New("the master ended the log stream: it stopped")
	}
	return err
}

// printLogs prints the log stream until it ends, and returns why it ended.
func printLogs(ctx context.Context, c api, cmd command, w io.Writer) error {
	s, err := c.Logs(ctx, cmd.ID, cmd.Logs)
	if err != nil {
		return err
	}
	defer s.Close()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		l, err := s.Next()
		if err != nil {
			return err
		}
		if cmd.Output == outJSON {
			err = enc.Encode(l)
		} else {
			err = renderLogLine(w, l, cmd.Times)
		}
		if err != nil {
			return err
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
