package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/gdpmtest"
)

// chromium is where Debian's chromium package puts the browser.
const chromium = "/usr/bin/chromium"

// waitTime bounds every wait for the page or the cluster.
const waitTime = 20 * time.Second

// TestWebInterface drives /ui/ in headless Chromium against a real cluster:
// the page asks for the token and lists the nodes; its form creates a
// service whose processes run; it shows an instance's log, scales the
// service and deletes it, which stops the processes.
func TestWebInterface(t *testing.T) {
	needBrowser(t)
	const token = "e2e-secret"
	// A secured cluster, as any cluster with a token: the page is served
	// over HTTPS, and the browser trusts exactly the master's key.
	c := startSecureCluster(t, token, 2)
	p := openBrowser(t, trustKey(t, c))

	p.do("open the page", chromedp.Navigate("https://"+c.master.HTTPAddr()+"/ui/"))
	p.wait("the page to ask for the token", `document.getElementById('token-form').classList.contains('needed')`)
	p.do("enter the token",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#token-save")))
	for _, s := range c.slaves {
		p.wait("node "+s.NodeID()+" listed", `document.querySelector('#nodes tbody').textContent.includes(`+js(s.NodeID()[:8])+`)`)
	}

	// A refused request shows the master's error.
	p.do("create too many instances",
		chromedp.SendKeys(chromedp.CSS("#create-command"), "true"),
		fill("#create-instances", "100000"),
		chromedp.Click(chromedp.CSS("#create-submit")))
	p.wait("the error shown beside the form", `(m => !m.hidden && m.classList.contains('err')`+
		` && m.textContent.includes('InstanceNum must be between'))(document.querySelector('#services-section .note'))`)

	const command = "while true; do echo hello-e2e; sleep 0.2; done"
	p.do("create a service from the form",
		fill("#create-command", ""),
		chromedp.SendKeys(chromedp.CSS("#create-command"), command),
		fill("#create-instances", "2"),
		chromedp.Click(chromedp.CSS("#create-submit")))
	id := c.waitService(t, command)
	pids := c.waitRunning(t, id, 2)
	p.wait("the new service's instances running in the page", `document.getElementById('detail-id').textContent === `+js(id)+
		` && document.querySelectorAll('#instances tr[data-state="running"]').length === 2`)

	p.do("open an instance's log", chromedp.Click(chromedp.CSS(`#instances button[data-instance]`)))
	p.wait("the instance's output in the log", `document.getElementById('log-lines').textContent.includes('hello-e2e')`)

	p.do("scale to 3",
		fill("#scale-instances", "3"),
		chromedp.Click(chromedp.CSS("#scale-submit")))
	pids = append(pids, c.waitRunning(t, id, 3)...)
	p.wait("the log to follow new lines", `document.getElementById('log-lines').childElementCount >= 10`)
	p.wait("three instances running in the page", `document.querySelectorAll('#instances tr[data-state="running"]').length === 3`+
		` && document.querySelector('#services tbody').textContent.includes('3 / 3')`)

	p.do("arm the delete button", chromedp.Click(chromedp.CSS("#delete")))
	p.wait("the delete button to ask again", `document.getElementById('delete').dataset.armed === '1'`)
	p.do("delete the service", chromedp.Click(chromedp.CSS("#delete")))
	waitFor(t, "service "+id+" to be gone", func() (bool, string) {
		_, err := c.client.Service(context.Background(), id)
		return errors.Is(err, gdpm.ErrNotFound), fmt.Sprint(err)
	})
	waitFor(t, fmt.Sprintf("processes %v to exit", pids), func() (bool, string) {
		var live []int
		for _, pid := range pids {
			if alive(pid) {
				live = append(live, pid)
			}
		}
		return len(live) == 0, fmt.Sprintf("alive: %v", live)
	})
	p.wait("the service gone from the page", `document.getElementById('detail').hidden && document.getElementById('log').hidden`+
		` && document.querySelectorAll('#services tbody tr').length === 0`)
	if problems := run(p, "read the page's problems", chromedp.Evaluate[[]string](`window.__problems`)); len(problems) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(problems, "\n"))
	}
}

// cluster is an embedded etcd, one master and its slaves, closed when the
// test ends: the test kit's (gdpmtest), with shortcuts.
type cluster struct {
	ca     *gdpm.CA // nil: plain text
	etcd   *gdpm.EmbeddedEtcd
	token  string
	master *gdpm.Master
	slaves []*gdpm.Slave
	client *gdpm.Client
}

// needBrowser skips a browser test in -short mode and where Chromium is
// missing, except in CI, which must have installed it.
func needBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a real cluster driven through a browser: skipped with -short")
	}
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing; CI must install chromium: %v", chromium, err)
		}
		t.Skipf("%s is missing (apt-get install chromium)", chromium)
	}
}

func startCluster(t *testing.T, token string, slaves int) *cluster {
	t.Helper()
	return startClusterWith(t, token, slaves, false)
}

// startSecureCluster is startCluster with TLS on every channel: a cluster
// CA, an embedded etcd that requires client certificates from it, and
// slaves that join by pinning the CA's hash.
func startSecureCluster(t *testing.T, token string, slaves int) *cluster {
	t.Helper()
	return startClusterWith(t, token, slaves, true)
}

func startClusterWith(t *testing.T, token string, slaves int, secure bool) *cluster {
	t.Helper()
	k := gdpmtest.Start(t, gdpmtest.Options{Token: token, Slaves: slaves, Secure: secure})
	return &cluster{ca: k.CA, etcd: k.Etcd, token: token, master: k.Masters[0], slaves: k.Slaves, client: k.Client}
}

func closeOrFail(t *testing.T, what string, close func() error) {
	if err := close(); err != nil {
		t.Errorf("%s close: %v", what, err)
	}
}

// waitService waits for the service running command and returns its id.
func (c *cluster) waitService(t *testing.T, command string) string {
	t.Helper()
	var id string
	waitFor(t, "a service running "+command, func() (bool, string) {
		list, err := c.client.Services(context.Background())
		for _, s := range list {
			if s.Command == command {
				id = s.ID
			}
		}
		return id != "", fmt.Sprintf("services %v, err %v", list, err)
	})
	return id
}

// waitRunning waits until exactly n instances of service id run as live
// processes, as the OS sees them, and returns their pids.
func (c *cluster) waitRunning(t *testing.T, id string, n int) []int {
	t.Helper()
	var pids []int
	waitFor(t, fmt.Sprintf("%d running processes of %s", n, id), func() (bool, string) {
		d, err := c.client.Service(context.Background(), id)
		pids = pids[:0]
		for _, in := range d.Instances {
			if in.State == gdpm.StateRunning && alive(in.PID) {
				pids = append(pids, in.PID)
			}
		}
		return len(pids) == n, fmt.Sprintf("live pids %v, err %v", pids, err)
	})
	return pids
}

// waitFor polls cond until it holds or waitTime passes (gdpmtest.WaitFor).
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	gdpmtest.WaitFor(t, waitTime, what, cond)
}

// watchProblems runs in the page before its own script and records what
// would only show in the console: uncaught errors, rejected promises and
// whatever the page's Content-Security-Policy blocks.
const watchProblems = `window.__problems = [];
addEventListener('error', (e) => __problems.push('error: ' + e.message));
addEventListener('unhandledrejection', (e) => __problems.push('unhandled rejection: ' + e.reason));
document.addEventListener('securitypolicyviolation', (e) => __problems.push('CSP blocked ' + e.blockedURI + ' (' + e.violatedDirective + ')'));`

// tab is one browser tab.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// openBrowser starts headless Chromium with a fresh profile; the browser
// is closed, and waited for, when the test ends.
//
// trusted, when given, are base64 SHA-256 hashes of the public keys whose
// certificates the browser accepts though no root it knows signed them.
func openBrowser(t *testing.T, trusted ...string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		// A closed network: nothing but the page's own master.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	if len(trusted) > 0 {
		// Chromium's own pinning flag: trust these keys only, not every
		// certificate (as --ignore-certificate-errors would).
		opts = append(opts, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(trusted, ",")))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc) // waits for the browser process
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		chromedp.Cancel(ctx)
		cancel()
	})
	// Start the browser on ctx itself: a browser started by a step's
	// context with a timeout would die with that context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchProblems}); err != nil {
		t.Fatal(err)
	}
	return &tab{t: t, ctx: ctx}
}

// do runs steps, failing the test with what the page shows if one fails
// or they take longer than waitTime.
func (p *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	run(p, what, chromedp.Steps(steps...))
}

// run runs a on page p and returns its value; see page.do.
func run[T any](p *tab, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTime)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, p.text())
	}
	return v
}

// wait polls the JavaScript expression cond until it is true.
func (p *tab) wait(what, cond string) {
	p.t.Helper()
	p.do("wait for "+what, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTime)))
}

// text is the page's visible text, for failure messages.
func (p *tab) text() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if err != nil {
		return fmt.Sprintf("(cannot read the page: %v)", err)
	}
	return s
}

// fill sets the value of the input sel as typing would, focus and input
// event included; unlike SendKeys it replaces what the field holds.
func fill(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(e => { e.focus(); e.value = ` + js(value) +
		`; e.dispatchEvent(new Event('input', {bubbles: true})); })(document.querySelector(` + js(sel) + `))`)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// saveScreenshot checks that shot is a PNG of a drawn page, not a blank
// one, at least minWidth pixels wide, keeps it in the test's temp dir and,
// with GDPM_UPDATE_SCREENSHOT=1, in docs/NAME for the README.
func saveScreenshot(t *testing.T, shot []byte, name string, minWidth int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < minWidth || b.Dy() < 600 {
		t.Errorf("screenshot %s is %v, want at least %dx600", name, b, minWidth)
	}
	if n := colours(img, 64); n < 16 {
		t.Errorf("screenshot %s has %d colours: the page looks blank", name, n)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if os.Getenv("GDPM_UPDATE_SCREENSHOT") == "1" {
		docs := filepath.Join("..", "docs")
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(docs, name), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// colours counts the distinct colours of img, up to limit.
func colours(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}

// trustKey checks, as any gdpm client does, that the master's certificate
// chains to the cluster CA, and returns its public key's hash for
// Chromium's --ignore-certificate-errors-spki-list. Making Chromium trust
// the CA itself would take NSS's certutil and a CA in the user's
// database; pinning the one key the page is served with is as narrow.
func trustKey(t *testing.T, c *cluster) string {
	t.Helper()
	conn, err := tls.Dial("tcp", c.master.HTTPAddr(), &tls.Config{RootCAs: c.ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("the master's certificate does not verify with the cluster CA: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
