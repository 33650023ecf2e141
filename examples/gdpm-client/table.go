package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/capy-pl/gdpm"
)

// The renderers are pure functions of the API types: they print what they
// are given, in the order given, and read no clock.

// clock is what "get services" measures ages against; tests fix it.
var clock = time.Now

// maxCommandWidth is where a table shortens a command; -o json and the
// header of "get service ID" print it whole.
const maxCommandWidth = 50

const timeLayout = "2006-01-02 15:04:05 MST"

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one table line: cells separated by tabs.
func row(tw io.Writer, cells ...string) {
	io.WriteString(tw, strings.Join(cells, "\t")+"\n")
}

// writeJSON prints v as indented JSON, without escaping <, > and & so that
// commands read as typed.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// renderNodes prints GET /node/: its parallel arrays, one node a line,
// with the host's name and its instances' CPU and memory.
func renderNodes(w io.Writer, l gdpm.NodeList) error {
	tw := newTable(w)
	row(tw, "HOST", "ID", "STATUS", "CPU", "MEM", "INSTANCES", "SERVICES", "REGISTERED")
	for i, id := range l.Ids {
		mem := bytesWord(at(l.RSS, i, 0))
		if total := at(l.MemTotal, i, 0); total > 0 {
			mem += " / " + bytesWord(total)
		}
		cpu := percent(at(l.CPU, i, 0))
		if cores := at(l.Cores, i, 0); cores > 0 {
			cpu += fmt.Sprintf(" / %d cores", cores)
		}
		row(tw, orDash(cell(at(l.Hostnames, i, ""))), cell(id), statusWord(at(l.Status, i, -1)),
			cpu, mem, count(at(l.Instances, i, -1)), count(at(l.ServiceNum, i, -1)), cell(at(l.Times, i, "?")))
	}
	return tw.Flush()
}

// renderNode prints GET /node/:id/.
func renderNode(w io.Writer, s gdpm.NodeServices) error {
	tw := newTable(w)
	row(tw, "SERVICE", "COMMAND", "INSTANCES")
	for i, id := range s.Ids {
		row(tw, cell(id), short(at(s.Command, i, "?")), count(at(s.Number, i, -1)))
	}
	return tw.Flush()
}

// renderServices prints GET /service/: one line per service with its
// status word, how many instances run of those desired, restarts, CPU,
// memory and age (as of now).
func renderServices(w io.Writer, list []gdpm.ServiceSummary, now time.Time) error {
	tw := newTable(w)
	row(tw, "NAME", "ID", "STATUS", "RUNNING/DESIRED", "RESTARTS", "CPU", "MEM", "AGE", "COMMAND")
	for _, s := range list {
		row(tw, orDash(cell(s.Name)), cell(s.ID), orDash(string(s.Status)),
			fmt.Sprintf("%d/%d", s.Running, s.InstanceNum), strconv.Itoa(s.Restarts),
			percent(s.CPU), bytesWord(s.RSS), age(s.CreatedAt, now), short(s.Command))
	}
	return tw.Flush()
}

// percent is a CPU figure in percent of one core.
func percent(p float64) string {
	if p >= 10 {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}

// bytesWord is a byte count in binary units.
func bytesWord(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0fMi", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0fKi", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10)
}

// age is how long ago t was, in the largest unit that fits, as kubectl
// shows it.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// renderService prints GET /service/:id/: the service, then one line per
// instance. Times are shown in loc.
func renderService(w io.Writer, d gdpm.ServiceDetail, loc *time.Location) error {
	tw := newTable(w)
	field := func(name, value string) { row(tw, name+":", value) }
	if d.Name != "" {
		field("Name", cell(d.Name))
	}
	field("ID", cell(d.ID))
	if d.Status != "" {
		status := string(d.Status)
		if d.Status == gdpm.ServiceUpdating {
			status += fmt.Sprintf(" (%d of %d instances updated)", d.Updated, d.InstanceNum)
		}
		field("Status", status)
	}
	if d.RolloutError != "" {
		field("Rollout halted", cell(d.RolloutError))
	}
	field("Restarts", strconv.Itoa(d.Restarts))
	if d.LastError != nil {
		field("Last error", fmt.Sprintf("%s (instance %s, %s)", cell(d.LastError.Message), cell(d.LastError.Instance), when(d.LastError.Since, loc)))
	}
	field("Usage", fmt.Sprintf("CPU %s, memory %s", percent(d.CPU), bytesWord(d.RSS)))
	field("Command", cell(d.Command))
	field("Instances", fmt.Sprintf("%d desired, %d running, %d pending", d.InstanceNum, d.Running, d.Pending))
	field("Restart", restartWord(d.Restart))
	if d.StopTimeout > 0 {
		field("Stop timeout", time.Duration(d.StopTimeout).String())
	} else {
		field("Stop timeout", gdpm.DefaultStopTimeout.String())
	}
	if d.Dir != "" {
		field("Directory", cell(d.Dir))
	}
	for i, k := range slices.Sorted(maps.Keys(d.Env)) {
		label := "" // one variable a line, the label on the first
		if i == 0 {
			label = "Env:"
		}
		row(tw, label, cell(k+"="+d.Env[k]))
	}
	if len(d.Ports) > 0 {
		field("Ports", strings.Join(d.Ports, ", "))
	}
	field("Created", when(d.CreatedAt, loc))
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(d.Instances) == 0 {
		_, err := io.WriteString(w, "\nNo instances.\n")
		return err
	}
	io.WriteString(w, "\n")
	withErrors := slices.ContainsFunc(d.Instances, func(in gdpm.InstanceInfo) bool { return in.Error != "" || in.LastError != "" })
	tw = newTable(w)
	withPorts := slices.ContainsFunc(d.Instances, func(in gdpm.InstanceInfo) bool { return len(in.Ports) > 0 })
	head := []string{"INSTANCE", "INDEX", "NODE", "STATE", "HEALTH", "PID", "RESTARTS", "EXIT", "CPU", "MEM", "STARTED"}
	if withPorts {
		head = append(head, "PORTS")
	}
	if withErrors {
		head = append(head, "ERROR")
	}
	row(tw, head...)
	for _, in := range d.Instances {
		index := strconv.Itoa(in.Index)
		if in.Version != "" && in.Version != d.Version {
			index += " (old)" // a rollout replaces it
		}
		cells := []string{cell(in.ID), index, orDash(cell(in.Node)), orDash(cell(string(in.State))), orDash(cell(string(in.Health))),
			"-", strconv.Itoa(in.Restarts), "-", "-", "-", when(in.StartedAt, loc)}
		if in.PID > 0 {
			cells[5] = strconv.Itoa(in.PID)
			cells[8], cells[9] = percent(in.CPU), bytesWord(in.RSS)
		}
		if in.ExitCode != nil {
			cells[7] = strconv.Itoa(*in.ExitCode)
		}
		if withPorts {
			var ps []string
			for _, name := range slices.Sorted(maps.Keys(in.Ports)) {
				ps = append(ps, fmt.Sprintf("%s=%d", name, in.Ports[name]))
			}
			cells = append(cells, orDash(strings.Join(ps, ",")))
		}
		if withErrors {
			e := in.Error
			if e == "" {
				e = in.LastError
			}
			cells = append(cells, orDash(short(e)))
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

// eventLine is the layout of one line of "events": time, revision, type,
// then the details.
const eventLine = "%-23s  %8s  %-18s  %s"

func renderEventHeader(w io.Writer) error {
	_, err := fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf(eventLine, "TIME", "REVISION", "EVENT", "DETAILS"), " "))
	return err
}

// renderEvent prints one event on one line: the ids (shortened, as the
// web interface shows them) and numbers it carries as key=value, then its
// message. Times are shown in loc.
func renderEvent(w io.Writer, ev gdpm.Event, loc *time.Location) error {
	var details []string
	add := func(key, value string) {
		if value != "" {
			details = append(details, key+"="+cell(value))
		}
	}
	add("service", shortID(ev.Service))
	add("instance", shortID(ev.Instance))
	add("node", shortID(ev.Node))
	if ev.PID > 0 {
		add("pid", strconv.Itoa(ev.PID))
	}
	if ev.ExitCode != nil {
		add("exit", strconv.Itoa(*ev.ExitCode))
	}
	if ev.Restarts > 0 {
		add("restarts", strconv.Itoa(ev.Restarts))
	}
	if ev.InstanceNum != nil {
		add("instances", strconv.Itoa(*ev.InstanceNum))
	}
	switch {
	case ev.Type == gdpm.EventServiceCreated:
		details = append(details, short(ev.Message)) // the command
	case ev.Message != "":
		details = append(details, cell(uuidPattern.ReplaceAllString(ev.Message, "$1")))
	}
	line := fmt.Sprintf(eventLine, when(ev.Time, loc), strconv.FormatInt(ev.Revision, 10), cell(string(ev.Type)), strings.Join(details, "  "))
	_, err := fmt.Fprintln(w, strings.TrimRight(line, " "))
	return err
}

// logTimeLayout is how "logs -t" prints a line's capture time: RFC 3339
// in UTC with milliseconds, always 24 characters wide.
const logTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// renderLogLine prints one line of "logs": with times the line's capture
// time, then the instance, "|" when it wrote the line to stdout, "!" to
// stderr or "*" for a marker (its process started or exited), then the
// line.
func renderLogLine(w io.Writer, l gdpm.LogLine, times bool) error {
	prefix := cell(l.Instance) + " |"
	switch {
	case l.Mark != "":
		prefix = cell(l.Instance) + " *"
	case l.Stream == gdpm.Stderr:
		prefix = cell(l.Instance) + " !"
	}
	if times {
		at := fmt.Sprintf("%-24s", "-") // a line written before times were kept
		if !l.Time.IsZero() {
			at = l.Time.UTC().Format(logTimeLayout)
		}
		prefix = at + " " + prefix
	}
	if l.Line == "" {
		_, err := fmt.Fprintln(w, prefix)
		return err
	}
	_, err := fmt.Fprintln(w, prefix, logText(l.Line))
	return err
}

// shortIDLen is how much of an id the events table shows: enough to tell
// ids apart, and to type with a shell's completion.
const shortIDLen = 8

// shortID is the first shortIDLen characters of id.
func shortID(id string) string {
	if r := []rune(id); len(r) > shortIDLen {
		return string(r[:shortIDLen])
	}
	return id
}

// uuidPattern finds the UUIDs (node ids) an event's message names, to
// shorten them as the ids are.
var uuidPattern = regexp.MustCompile(`\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)

// at is s[i], or def when the server sent arrays of different lengths.
func at[T any](s []T, i int, def T) T {
	if i < len(s) {
		return s[i]
	}
	return def
}

func count(n int) string {
	if n < 0 {
		return "?"
	}
	return strconv.Itoa(n)
}

func statusWord(s int) string {
	switch s {
	case gdpm.NodeOnline:
		return "online"
	case gdpm.NodeDraining:
		return "draining"
	case -1:
		return "?"
	}
	return "unknown(" + strconv.Itoa(s) + ")"
}

func restartWord(p gdpm.RestartPolicy) string {
	if p == "" {
		return string(gdpm.RestartAlways)
	}
	return cell(string(p))
}

func when(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format(timeLayout)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell makes server text safe for one table cell: control characters (a
// newline or tab in a command, a terminal escape sequence) are shown
// escaped instead of breaking the table or the terminal.
func cell(s string) string { return escape(s, unicode.IsControl) }

// logText makes a log line safe for a terminal as cell does, but keeps
// its tabs: they are common in logs and break no line.
func logText(s string) string {
	return escape(s, func(r rune) bool { return r != '\t' && unicode.IsControl(r) })
}

// escape shows the runes of s for which control is true as Go escapes.
func escape(s string, control func(rune) bool) string {
	if !strings.ContainsFunc(s, control) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if control(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// short is cell(s) cut to maxCommandWidth characters, ending in "…" when cut.
func short(s string) string {
	s = cell(s)
	if r := []rune(s); len(r) > maxCommandWidth {
		return string(r[:maxCommandWidth-1]) + "…"
	}
	return s
}
