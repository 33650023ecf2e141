package gdpm

import (
	"bytes"
	"math"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (the kernel hides its real HZ
// behind it).
const clockTicks = 100

// usageSampler measures each instance's whole process group from /proc.
//
// It reads /proc/PID/stat directly rather than through
// github.com/prometheus/procfs: one scan of /proc per sample reads each
// process's stat once into a reused buffer and parses the three numbers it
// needs (process group, utime+stime, rss) in place, without allocating per
// process. procfs's NewStat/AllProcs allocate a struct, a string per field
// and a slice per process, which at 1,000 instances is most of the cost
// (BenchmarkUsageSample measures this one). One scan serves every group:
// members are found by their pgrp field, so grandchildren count, and a
// process that left the group (setsid) does not.
type usageSampler struct {
	buf   []byte
	names []string
	// prev holds each group's CPU ticks at the last sample, to turn the
	// cumulative counters into a rate; a group's entry goes with it.
	prev     map[int]groupTicks
	pageSize int64
	// Reused by every sample (cleared, not made again): at 1,000
	// instances a sample's maps were most of the garbage it made.
	ticks map[int]uint64
	rss   map[int]int64
	out   map[int]InstanceUsage
}

type groupTicks struct {
	ticks uint64
	at    time.Time
}

func newUsageSampler() *usageSampler {
	return &usageSampler{buf: make([]byte, 1024), prev: map[int]groupTicks{}, pageSize: int64(os.Getpagesize()),
		ticks: map[int]uint64{}, rss: map[int]int64{}, out: map[int]InstanceUsage{}}
}

// sample measures the groups (leader pid = pgid) and returns each one's
// usage. A group with no live process is left out. The CPU of a group seen
// for the first time is 0: a rate needs two samples. The map it returns is
// the sampler's: valid until the next sample.
func (u *usageSampler) sample(pgids map[int]bool, now time.Time) map[int]InstanceUsage {
	ticks, rss, out := u.ticks, u.rss, u.out
	clear(ticks)
	clear(rss)
	clear(out)
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	path := make([]byte, 0, 32)
	for {
		names, err := d.Readdirnames(512)
		for _, name := range names {
			if name[0] < '0' || name[0] > '9' {
				continue
			}
			path = append(append(append(path[:0], "/proc/"...), name...), "/stat"...)
			pgrp, t, pages, ok := u.readStat(path)
			if !ok || !pgids[pgrp] {
				continue
			}
			ticks[pgrp] += t
			rss[pgrp] += pages * u.pageSize
		}
		if err != nil || len(names) == 0 {
			break
		}
	}
	for pgid, t := range ticks {
		iu := InstanceUsage{PID: pgid, RSS: rss[pgid]}
		if p, ok := u.prev[pgid]; ok && t >= p.ticks && now.After(p.at) {
			secs := now.Sub(p.at).Seconds()
			iu.CPU = float64(t-p.ticks) / clockTicks / secs * 100
		}
		u.prev[pgid] = groupTicks{ticks: t, at: now}
		out[pgid] = iu
	}
	for pgid := range u.prev {
		if _, ok := ticks[pgid]; !ok {
			delete(u.prev, pgid)
		}
	}
	return out
}

// readStat reads one /proc/PID/stat with raw syscalls into the sampler's
// buffer and parses pgrp (field 5), utime+stime (14, 15) and rss (24).
func (u *usageSampler) readStat(path []byte) (pgrp int, ticks uint64, rssPages int64, ok bool) {
	p := append(path, 0)
	fd, err := syscall.Open(string(p[:len(p)-1]), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, 0, false
	}
	n, err := syscall.Read(fd, u.buf)
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return 0, 0, 0, false
	}
	b := u.buf[:n]
	// The command name may hold spaces and parentheses; it ends at the
	// last ')'. Then: state(3) ppid(4) pgrp(5) ... utime(14) stime(15)
	// ... rss(24).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	b = b[i+1:]
	field := 2
	var utime, stime uint64
	for len(b) > 0 && field <= 24 {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		j := bytes.IndexByte(b, ' ')
		if j < 0 {
			j = len(b)
		}
		tok := b[:j]
		b = b[j:]
		field++
		switch field {
		case 3:
			if len(tok) > 0 && (tok[0] == 'Z' || tok[0] == 'X') {
				return 0, 0, 0, false // a zombie uses nothing
			}
		case 5:
			pgrp = int(atou(tok))
		case 14:
			utime = atou(tok)
		case 15:
			stime = atou(tok)
		case 24:
			rssPages = int64(atou(tok))
		}
	}
	return pgrp, utime + stime, rssPages, field >= 24
}

// atou parses a decimal number without allocating; 0 when it is not one.
func atou(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// hostUsage fills in the host's figures: cores, memory and load.
func hostUsage(u *NodeUsage) {
	u.Cores = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range bytes.Lines(b) {
			f := bytes.Fields(line)
			if len(f) < 2 {
				continue
			}
			v := int64(atou(f[1])) * 1024 // kB
			switch string(f[0]) {
			case "MemTotal:":
				u.MemTotal = v
			case "MemAvailable:":
				u.MemAvailable = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := bytes.Fields(b); len(f) > 0 {
			u.Load1, _ = strconv.ParseFloat(string(f[0]), 64)
		}
	}
}

// sampleUsageInto measures every running instance once into rep.usage.
func (sup *supervisor) sampleUsageInto(rep *usageReport, now time.Time) {
	keys, pgids := rep.keys, rep.pgids
	clear(keys)
	clear(pgids)
	sup.mu.Lock()
	for key, r := range sup.running {
		if st := r.Status(); st.PID > 0 && (st.State == StateRunning || st.State == StateStopping) {
			keys[st.PID], pgids[st.PID] = key, true
		}
	}
	sup.mu.Unlock()
	u := &rep.usage
	clear(u.Instances)
	u.CPU, u.RSS, u.Cgroups = 0, 0, cgroupVersion()
	for pgid, iu := range rep.sampler.sample(pgids, now) {
		// Rounded, so that an idle instance's record does not change
		// with every sample's noise.
		iu.CPU = math.Round(iu.CPU*10) / 10
		iu.RSS = iu.RSS &^ (64<<10 - 1)
		u.Instances[keys[pgid]] = iu
		u.CPU += iu.CPU
		u.RSS += iu.RSS
	}
	hostUsage(u)
	u.CPU = math.Round(u.CPU*10) / 10
	u.MemAvailable &^= 16<<20 - 1
	u.Load1 = math.Round(u.Load1*10) / 10
}
