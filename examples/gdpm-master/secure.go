package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/examples/internal/cmdutil"
	"github.com/capy-pl/gdpm/internal/netaddr"
)

// secFlags are the master's security flags.
type secFlags struct {
	tls                       *bool
	cert, key, ca             *string
	advertise                 *string
	etcdCA, etcdCert, etcdKey *string
	caDir                     *string
}

func addSecFlags(fs *flag.FlagSet) *secFlags {
	return &secFlags{
		tls:       fs.Bool("tls", true, "with a token, serve every channel over TLS with the cluster CA; -tls=false keeps plain text (insecure)"),
		cert:      fs.String("tls-cert", "", "this master's certificate `FILE` (PEM, server and client usage), instead of one issued by the built-in CA"),
		key:       fs.String("tls-key", "", "the key `FILE` of -tls-cert"),
		ca:        fs.String("tls-ca", "", "CA certificate `FILE` that issued -tls-cert and the slaves' certificates"),
		advertise: fs.String("advertise", "", "extra `HOST[,HOST...]` names or IPs for the master's (and the embedded etcd's) certificate"),
		etcdCA:    fs.String("etcd-cacert", "", "CA `FILE` of an external etcd's server certificate (handed to slaves)"),
		etcdCert:  fs.String("etcd-cert", "", "client certificate `FILE` for an external etcd (handed to slaves)"),
		etcdKey:   fs.String("etcd-key", "", "client key `FILE` for an external etcd (handed to slaves)"),
		caDir:     fs.String("ca-dir", "", "with -etcd: the cluster CA's `DIR` (ca.crt, ca.key; another master's -embed-etcd DIR/pki), to run a standby master on that master's etcd"),
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkListen is the rule the master enforces before it starts: without a
// token every listener, the embedded etcd's included, is loopback.
func checkListen(token string, listeners map[string]string) error {
	if token != "" {
		return nil
	}
	for _, flagName := range []string{"http", "tcp", "etcd-listen"} {
		addr, ok := listeners[flagName]
		if !ok || netaddr.IsLoopbackListen(addr) {
			continue
		}
		return cmdutil.Usagef("-%s %s is not loopback: without a token anyone who reaches it could run commands on every slave. "+
			"Set -token (or GDPM_TOKEN) to secure the cluster: TLS on every channel with a built-in CA, and slaves join with the printed line", flagName, addr)
	}
	return nil
}

// security is what the flags decided: the master's TLS, its etcd client
// config, and the embedded etcd's CA.
type security struct {
	master  *gdpm.MasterTLS
	etcdTLS *tls.Config
	etcdCA  *gdpm.CA // for the embedded etcd's certificate
}

// setup builds the security of a secured master. With -embed-etcd the CA
// lives in DIR/pki: the embedded etcd needs its certificate before it
// starts, and the master needs a client certificate to read etcd at all.
// The master then also keeps it in etcd, where masters started with -etcd
// against the same store find it.
func (f *secFlags) setup(embedDir string, embedded bool, stderr io.Writer) (*security, error) {
	sec := &security{master: &gdpm.MasterTLS{Advertise: splitList(*f.advertise)}}
	byo := *f.cert != "" || *f.key != "" || *f.ca != ""
	if byo {
		if *f.cert == "" || *f.key == "" || *f.ca == "" {
			return nil, cmdutil.Usagef("-tls-cert, -tls-key and -tls-ca go together")
		}
		cert, err := tls.LoadX509KeyPair(*f.cert, *f.key)
		if err != nil {
			return nil, err
		}
		pool, err := gdpm.LoadCertPool(*f.ca)
		if err != nil {
			return nil, err
		}
		sec.master.Cert, sec.master.RootCAs = &cert, pool
		if embedded {
			return nil, cmdutil.Usagef("-tls-cert with -embed-etcd is not supported: use the built-in CA, or an external etcd with -etcd-cacert/-etcd-cert/-etcd-key")
		}
	}
	if embedded && *f.caDir != "" {
		return nil, cmdutil.Usagef("-ca-dir goes with -etcd: with -embed-etcd DIR the CA is kept in DIR/pki")
	}
	if embedded {
		var ca *gdpm.CA
		var err error
		if embedDir != "" {
			var created bool
			ca, created, err = gdpm.LoadOrCreateCAFiles(filepath.Join(embedDir, "pki"))
			if created {
				fmt.Fprintf(stderr, "gdpm-master: created the cluster CA in %s\n", filepath.Join(embedDir, "pki"))
			}
		} else {
			ca, err = gdpm.NewCA()
		}
		if err != nil {
			return nil, err
		}
		sec.master.CA, sec.etcdCA = ca, ca
		if sec.etcdTLS, err = ca.EtcdClientTLS("gdpm master"); err != nil {
			return nil, err
		}
		return sec, nil
	}
	// External etcd: the CA comes from etcd (created there by the first
	// master); the etcd credentials, when given, go to the slaves too.
	if *f.etcdCA != "" || *f.etcdCert != "" || *f.etcdKey != "" {
		creds, err := gdpm.LoadEtcdCredentials(*f.etcdCA, *f.etcdCert, *f.etcdKey)
		if err != nil {
			return nil, err
		}
		if sec.etcdTLS, err = creds.EtcdClientTLS(); err != nil {
			return nil, err
		}
		sec.master.SlaveEtcd = creds
	}
	if *f.caDir != "" {
		// A standby master on another master's embedded etcd: that etcd
		// trusts the cluster CA, so this master issues its own client
		// certificate, and slaves use the ones they are issued (no etcd
		// key is handed out).
		ca, err := readCAFiles(*f.caDir)
		if err != nil {
			return nil, err
		}
		sec.master.CA = ca
		if *f.etcdCert == "" {
			if sec.etcdTLS, err = ca.EtcdClientTLS("gdpm master"); err != nil {
				return nil, err
			}
			sec.master.SlaveEtcd = nil
		}
	}
	return sec, nil
}

// readCAFiles loads DIR/ca.crt and DIR/ca.key, which must exist.
func readCAFiles(dir string) (*gdpm.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	return gdpm.ParseCA(certPEM, keyPEM)
}

// joinHost is the registration address to print in the join line: the
// first -advertise name when the master listens on every interface.
func joinHost(tcpAddr string, advertise []string) string {
	host, port, err := net.SplitHostPort(tcpAddr)
	if err != nil {
		return tcpAddr
	}
	if ip := net.ParseIP(host); (host == "" || (ip != nil && ip.IsUnspecified())) && len(advertise) > 0 {
		return net.JoinHostPort(advertise[0], port)
	}
	return tcpAddr
}
