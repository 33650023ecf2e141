package gdpm

import (
	"bufio"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// The registration protocol. A slave opens a TCP connection to a master and
// sends one frame; the master answers with one frame and closes. A frame is
// a 4-byte big-endian length followed by that many bytes of JSON. The magic
// string and version let either side reject foreign bytes early.
const (
	protoMagic   = "gdpm"
	protoVersion = 1
	maxFrame     = 64 << 10
	// registerTimeout bounds one whole exchange on either side.
	registerTimeout = 5 * time.Second
)

// hello is the slave's registration request.
type hello struct {
	Magic    string `json:"Magic"`
	Version  int    `json:"Version"`
	Token    string `json:"Token,omitempty"`
	Hostname string `json:"Hostname"`
	// PrevID is the node id the slave had before a restart; the master gives
	// it back when no live node holds it.
	PrevID  string `json:"PrevID,omitempty"`
	Release string `json:"Release"`
	// CSR is a secured slave's certificate request (DER); its private
	// key never leaves the slave. Addrs are the slave's own addresses,
	// for the certificate's names.
	CSR   []byte   `json:"CSR,omitempty"`
	Addrs []string `json:"Addrs,omitempty"`
}

// welcome is the master's answer. On failure only Error is set.
type welcome struct {
	Magic   string `json:"Magic"`
	Version int    `json:"Version"`
	Error   string `json:"Error,omitempty"`
	// Code classifies Error ("unauthorized"), so the slave can tell a
	// wrong token from a passing failure.
	Code      string   `json:"Code,omitempty"`
	NodeID    string   `json:"NodeID,omitempty"`
	Endpoints []string `json:"Endpoints,omitempty"`
	Prefix    string   `json:"Prefix,omitempty"`
	// LeaseTTL is the slave's liveness lease in seconds.
	LeaseTTL int `json:"LeaseTTL,omitempty"`
	// Cert is the slave's certificate signed from its CSR, PEM; CA the
	// cluster CA, PEM; Etcd credentials for an etcd that does not
	// trust the cluster CA. Only from a secured master.
	Cert []byte           `json:"Cert,omitempty"`
	CA   []byte           `json:"CA,omitempty"`
	Etcd *EtcdCredentials `json:"Etcd,omitempty"`

	// etcdTLS is the etcd client config the slave builds from the above.
	// Not sent.
	etcdTLS *tls.Config

	// local is the slave's end of the registration connection: an
	// address of this host that the master can reach. Not sent.
	local net.IP
}

func writeFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > maxFrame {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, len(body), maxFrame)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("%w: reading frame header: %v", ErrProtocol, err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxFrame {
		return fmt.Errorf("%w: frame length %d out of range (1..%d)", ErrProtocol, n, maxFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("%w: reading frame body: %v", ErrProtocol, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: frame is not JSON: %v", ErrProtocol, err)
	}
	return nil
}

// checkHello validates a hello against the protocol and the cluster token.
func checkHello(h hello, token string) error {
	if h.Magic != protoMagic {
		return fmt.Errorf("%w: not a gdpm hello", ErrProtocol)
	}
	if h.Version != protoVersion {
		return fmt.Errorf("%w: protocol version %d not supported (want %d)", ErrProtocol, h.Version, protoVersion)
	}
	if token != "" && subtle.ConstantTimeCompare([]byte(h.Token), []byte(token)) != 1 {
		return fmt.Errorf("%w: bad token", ErrUnauthorized)
	}
	return nil
}

// exchangeHello is the slave side: send h on conn and read the welcome.
func exchangeHello(conn net.Conn, h hello) (welcome, error) {
	var w welcome
	conn.SetDeadline(time.Now().Add(registerTimeout))
	if err := writeFrame(conn, h); err != nil {
		return w, fmt.Errorf("gdpm: register: %w", err)
	}
	if err := readFrame(bufio.NewReader(conn), &w); err != nil {
		return w, fmt.Errorf("gdpm: register: %w", err)
	}
	if w.Magic != protoMagic {
		return w, fmt.Errorf("gdpm: register: %w: answer is not from a gdpm master", ErrProtocol)
	}
	if w.Error != "" {
		if w.Code == codeUnauthorized {
			return w, fmt.Errorf("gdpm: register: master refused the token: %w", ErrUnauthorized)
		}
		return w, fmt.Errorf("gdpm: register: master refused: %s", w.Error)
	}
	if w.NodeID == "" || len(w.Endpoints) == 0 {
		return w, fmt.Errorf("gdpm: register: %w: welcome without node id or etcd endpoints", ErrProtocol)
	}
	return w, nil
}
