// Package cmdutil is what the gdpm-master and gdpm-slave binaries share:
// the -log-level and -log-format flags, flag parsing and exit statuses.
// It never exits and handles no signals; the binaries' main functions do.
package cmdutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Exit statuses.
const (
	ExitOK     = 0
	ExitFailed = 1 // the binary started and failed
	ExitUsage  = 2 // the command line is wrong
)

// Log formats for -log-format.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// LogFlags are -log-level and -log-format, set by parsing a FlagSet.
type LogFlags struct {
	Level  slog.Level
	Format string // FormatText or FormatJSON
}

// AddLogFlags registers -log-level (default info) and -log-format (default
// text) on fs. The flag package rejects a bad value as it parses, with the
// accepted values in its message.
func AddLogFlags(fs *flag.FlagSet) *LogFlags {
	f := &LogFlags{Level: slog.LevelInfo, Format: FormatText}
	fs.Var(levelValue{&f.Level}, "log-level", "log `level`: debug, info, warn or error")
	fs.Var(formatValue{&f.Format}, "log-format", "log `format` on stderr: text (key=value) or json (one object a line)")
	return f
}

// Logger returns a logger that writes records at f.Level and above to w
// in f.Format.
func (f *LogFlags) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: f.Level}
	if f.Format == FormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Notice logs msg with args at info level even when the logger's level is
// higher: for the few records a user or a script waits for, such as where
// a server listens.
func Notice(log *slog.Logger, msg string, args ...any) {
	r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	r.Add(args...)
	log.Handler().Handle(context.Background(), r)
}

type levelValue struct{ l *slog.Level }

func (v levelValue) String() string {
	if v.l == nil { // the flag package's zero value, to compare defaults
		return ""
	}
	return strings.ToLower(v.l.String())
}

func (v levelValue) Set(s string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	*v.l = l
	return nil
}

type formatValue struct{ f *string }

func (v formatValue) String() string {
	if v.f == nil {
		return ""
	}
	return *v.f
}

func (v formatValue) Set(s string) error {
	if s != FormatText && s != FormatJSON {
		return errors.New("want text or json")
	}
	*v.f = s
	return nil
}

// usageError is a command line that cannot run.
type usageError struct {
	msg     string
	printed bool // the flag package has printed it, with the usage
}

func (e *usageError) Error() string { return e.msg }

// Usagef returns a usage error: ExitStatus reports it with a hint to -h and
// returns ExitUsage.
func Usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Parse parses args with fs, which must use flag.ContinueOnError. The
// binaries take no positional arguments, so any is a usage error. After -h
// it returns flag.ErrHelp, the usage printed.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error(), printed: true}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected arguments %q", fs.Args())
	}
	return nil
}

// ExitStatus prints err, if there is one to print, to w as the binary
// name's, and returns the exit status for it: ExitOK for nil and
// flag.ErrHelp, ExitUsage for a usage error (from Parse or Usagef),
// ExitFailed for anything else.
func ExitStatus(w io.Writer, name string, err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		if !ue.printed {
			fmt.Fprintf(w, "%s: %s\nRun '%s -h' for help.\n", name, ue.msg, name)
		}
		return ExitUsage
	}
	fmt.Fprintf(w, "%s: %v\n", name, err)
	return ExitFailed
}
