package gdpm

import (
	"fmt"
	"net"
	"strings"
	"sync"
)

// checkPorts validates Spec.Ports: at most MaxPorts distinct names of 1 to
// 32 lower-case letters, digits, '-' and '_', each becoming the variable
// GDPM_PORT_<NAME>.
func checkPorts(ports []string) error {
	if len(ports) > MaxPorts {
		return fmt.Errorf("Ports has %d names, over the limit of %d: %w", len(ports), MaxPorts, ErrBadRequest)
	}
	seen := map[string]bool{}
	for _, p := range ports {
		ok := p != "" && len(p) <= 32
		for _, r := range p {
			ok = ok && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}
		if !ok {
			return fmt.Errorf("port name %q must be 1 to 32 lower-case letters, digits, '-' or '_': %w", truncate(p, 40), ErrBadRequest)
		}
		if seen[portVar(p)] {
			return fmt.Errorf("port name %q is given twice: %w", p, ErrBadRequest)
		}
		seen[portVar(p)] = true
	}
	return nil
}

// portVar is the environment variable that carries a named port.
func portVar(name string) string {
	return "GDPM_PORT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// portPool hands out free TCP ports to a slave's instances. The kernel
// picks a free port (a listen on port 0, closed at once); the pool
// remembers the ports its live instances hold, so that two instances on
// one node never get the same port even before either listens on it.
type portPool struct {
	mu   sync.Mutex
	held map[int]bool
}

func newPortPool() *portPool { return &portPool{held: map[int]bool{}} }

// reserve returns one free port for each name, or an error when the
// kernel gives none.
func (p *portPool) reserve(names []string) (map[string]int, error) {
	if len(names) == 0 {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(names))
	for _, name := range names {
		port, err := p.pickLocked()
		if err != nil {
			p.releaseLocked(out)
			return nil, fmt.Errorf("gdpm: reserve port %q: %w", name, err)
		}
		out[name] = port
	}
	return out, nil
}

func (p *portPool) pickLocked() (int, error) {
	for range 100 {
		// Loopback: a port free there is free for the wildcard too unless
		// another address holds it, which the pool cannot know anyway.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !p.held[port] {
			p.held[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port after 100 tries")
}

// release gives an instance's ports back.
func (p *portPool) release(ports map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(ports)
}

func (p *portPool) releaseLocked(ports map[string]int) {
	for _, port := range ports {
		delete(p.held, port)
	}
}
