package gdpm

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Rotation bounds each stream of each instance; the sweep bounds how many
// instances' logs a slave keeps. The logs of an instance that no longer
// runs here (deleted, scaled down, moved) stay for post-mortems until they
// have not been written for LogRetention, then they go.

// logSweepInterval is how often a slave looks for expired logs.
const logSweepInterval = time.Hour

// sweepLogDir removes the files under dir (dir/SERVICE/INSTANCE.stream[.N])
// of instances that active says do not run here and that were last written
// before now-retention, then service dirs left empty. It returns how many
// files it removed.
func sweepLogDir(dir string, retention time.Duration, now time.Time, active func(svc, inst string) bool) int {
	services, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, sd := range services {
		if !sd.IsDir() {
			continue
		}
		svc := sd.Name()
		sdir := filepath.Join(dir, svc)
		files, err := os.ReadDir(sdir)
		if err != nil {
			continue
		}
		left := len(files)
		for _, f := range files {
			inst, ok := logFileInstance(f.Name())
			if !ok || active(svc, inst) {
				continue
			}
			fi, err := f.Info()
			if err != nil || now.Sub(fi.ModTime()) < retention {
				continue
			}
			if os.Remove(filepath.Join(sdir, f.Name())) == nil {
				removed++
				left--
			}
		}
		if left == 0 {
			os.Remove(sdir) // fails harmlessly if a new file just came
		}
	}
	return removed
}

// logFileInstance parses INSTANCE.stdout, INSTANCE.stderr, their rotated
// INSTANCE.stdout.N and the indexes beside them (FILE.idx).
func logFileInstance(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".idx")
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	for _, s := range []LogStreamName{Stdout, Stderr} {
		if inst, ok := strings.CutSuffix(name, "."+string(s)); ok && inst != "" {
			return inst, true
		}
	}
	return "", false
}
