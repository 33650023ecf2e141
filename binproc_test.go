package gdpm_test

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// binProc is a gdpm binary a test runs as a real process, so that it can
// be SIGKILLed.
type binProc struct {
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer // stdout and stderr
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// startBinProc starts bin with args. It dies with the test process
// (Pdeathsig); cleanup stops it (SIGTERM, SIGKILL after 20 s) and prints its
// output if the test failed.
func startBinProc(tb testing.TB, bin string, args ...string) *binProc {
	tb.Helper()
	p := &binProc{out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("%s %d output:\n%s", filepath.Base(bin), p.pid(), p.out.String())
		}
	})
	return p
}

func (p *binProc) pid() int { return p.cmd.Process.Pid }

// stop ends the process with SIGTERM, SIGKILL after 20 s; idempotent.
func (p *binProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill9 SIGKILLs the process and waits for it to be reaped.
func (p *binProc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}
