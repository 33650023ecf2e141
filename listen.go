package gdpm

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServerLimits bounds what one client can hold on a server: the master's
// API and registration port, a slave's log server. Zero fields take the
// defaults noted; every one is a DefaultXxx constant.
//
// Streams (GET /events, log follows) are exempt from ReadTimeout once they
// start: they send heartbeats and bound each write instead, so a client
// that stops reading is dropped after streamWriteTimeout.
type ServerLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers, from the
	// first byte of the request (or the connection's start). Default
	// DefaultReadHeaderTimeout (10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a body
	// that trickles in slower closes the connection. Default
	// DefaultReadTimeout (20s).
	ReadTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request. Default DefaultIdleTimeout (20s).
	IdleTimeout time.Duration
	// MaxConns caps the connections one listener holds at once; the ones
	// beyond it are answered 503 (HTTP) or closed (registration) at once,
	// with a log line. Default DefaultMaxConns (1024), lowered to a
	// quarter of the process's open-file limit when that is smaller, so
	// that clients cannot take every descriptor the process has.
	MaxConns int
}

func (l ServerLimits) withDefaults() ServerLimits {
	l.ReadHeaderTimeout = orDefault(l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	l.ReadTimeout = orDefault(l.ReadTimeout, DefaultReadTimeout)
	l.IdleTimeout = orDefault(l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxConns <= 0 {
		l.MaxConns = defaultMaxConns()
	}
	return l
}

// httpServer is an http.Server with the limits' timeouts.
func (l ServerLimits) httpServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		IdleTimeout:       l.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// streamDeadlines lifts the server's ReadTimeout off a streaming response,
// which runs far longer: the server watches the connection for the
// client's close with a read that the deadline would otherwise end,
// cancelling the stream. The streams bound their writes themselves.
func streamDeadlines(rc *http.ResponseController) {
	rc.SetReadDeadline(time.Time{})
}

// refuseHTTP is what a full HTTP listener answers before closing.
const refuseHTTP = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 56\r\n\r\n" +
	`{"error":"too many connections; try again in a moment"}` + "\n"

// refuseLog is how often at most a listener logs its refusals.
const refuseLog = 10 * time.Second

// limitListener is a listener that survives transient accept errors and
// caps its open connections.
//
// Accept returns only a connection or, once the listener is closed, an
// error: any other error (EMFILE, ENFILE, ECONNABORTED, ENOBUFS...) is
// waited out with a delay from 5 ms doubling to 1 s, as net/http.Server
// does, because a loop that returned on it would leave the port dead for
// good after a moment of descriptor exhaustion.
//
// Beyond max open connections, a new one is refused at once (refusal is
// written to it, best effort, then it is closed) rather than left to wait,
// so that a client holding many connections gets a clear answer and the
// others are not starved of descriptors.
type limitListener struct {
	net.Listener
	name    string
	max     int
	refusal []byte
	log     *slog.Logger

	mu       sync.Mutex
	open     int
	refused  int // since the last log line
	lastLog  time.Time
	closed   chan struct{}
	closeErr error
	once     sync.Once
}

func newLimitListener(ln net.Listener, name string, max int, refusal string, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, name: name, max: max, refusal: []byte(refusal), log: log, closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			select {
			case <-l.closed:
				return nil, err
			default:
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", "listener", l.name, "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		l.mu.Lock()
		if l.open >= l.max {
			l.refused++
			logNow := time.Since(l.lastLog) >= refuseLog
			n := l.refused
			if logNow {
				l.lastLog, l.refused = time.Now(), 0
			}
			l.mu.Unlock()
			if logNow {
				l.log.Warn("too many connections; refusing new ones", "listener", l.name, "max", l.max, "refused", n, "remote", c.RemoteAddr().String())
			}
			l.refuse(c)
			continue
		}
		l.open++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// refuse writes the refusal and closes c. The refusal fits in a new
// socket's send buffer, so the write does not wait for the peer; the
// deadline is there in case it would.
func (l *limitListener) refuse(c net.Conn) {
	if len(l.refusal) > 0 {
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(l.refusal)
	}
	c.Close()
}

func (l *limitListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.closeErr = l.Listener.Close()
	})
	return l.closeErr
}

// limitedConn gives its slot back on its first Close.
type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return err
}

// CloseWrite half-closes a TCP connection (net/http and the registration
// reply use it to flush before closing).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
