package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm"
)

// staleTime bounds how long the page may keep showing what it last read
// as current after the master stops: a few polls.
const staleTime = 6 * time.Second

// a11yReport is what checkA11y finds on the page.
type a11yReport struct {
	Missing []string // interactive elements without an accessible name
	Logs    []string // the accessible names of the instances' Log buttons
}

// checkA11y names every interactive element the way assistive technology
// does for these simple cases (aria-label, aria-labelledby, label, text,
// title) and lists those left without a name, and the Log buttons' names.
const checkA11y = `(() => {
  const sel = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"]), [role=button]';
  const text = (e) => (e ? e.textContent : '').replace(/\s+/g, ' ').trim();
  const name = (e) => {
    const aria = (e.getAttribute('aria-label') || '').trim();
    if (aria) return aria;
    const by = e.getAttribute('aria-labelledby');
    if (by) return by.split(/\s+/).map((id) => text(document.getElementById(id))).join(' ').trim();
    if (e.labels && e.labels.length) return [...e.labels].map(text).join(' ').trim();
    if (e.tagName === 'BUTTON' || e.tagName === 'A') return text(e);
    return (e.title || '').trim();
  };
  const rendered = [...document.querySelectorAll(sel)].filter((e) => e.getClientRects().length > 0);
  return {
    Missing: rendered.filter((e) => !name(e)).map((e) => e.outerHTML.slice(0, 120)),
    Logs: [...document.querySelectorAll('#instances button.log')].map(name),
  };
})()`

// inViewport is true when the element sel is shown and wholly inside the
// window: the user sees it without scrolling.
func inViewport(sel string) string {
	return `(e => !!e && !e.hidden && e.getClientRects().length > 0 && (r => r.top >= 0 && r.left >= 0` +
		` && r.bottom <= innerHeight && r.right <= innerWidth)(e.getBoundingClientRect()))(document.querySelector(` + js(sel) + `))`
}

// TestWebInterfaceStaysHonest drives /ui/ through failures: a refused
// action's error shows beside its control, the merged log carries every
// instance, the page fits a phone and names every control, a node killed
// (its lease revoked) shows in the events panel, and with the master
// stopped the page says so and greys its tables, then recovers by itself
// when a master serves again. It takes the README's screenshots.
func TestWebInterfaceStaysHonest(t *testing.T) {
	needBrowser(t)
	c := startCluster(t, "views-secret", 2)
	p := openBrowser(t)
	url := "http://" + c.master.HTTPAddr() + "/ui/"

	p.do("open the page", chromedp.Navigate(url))
	p.do("enter the token",
		chromedp.SendKeys(chromedp.CSS("#token"), c.token),
		chromedp.Click(chromedp.CSS("#token-save")))
	p.wait("the token field to name its purpose", `document.getElementById('token').getAttribute('autocomplete') === 'current-password'`)
	for _, s := range c.slaves {
		p.wait("node "+s.NodeID()+" listed", `document.querySelector('#nodes tbody').textContent.includes(`+js(s.NodeID()[:8])+`)`)
	}
	p.wait("the events panel live", `document.getElementById('events-state').textContent === '(live)'`)

	// Two instances writing to stdout and stderr in turn.
	const command = `i=0; while true; do echo "out-$i"; echo "err-$i" >&2; i=$((i+1)); sleep 0.2; done`
	p.do("create a service",
		chromedp.SendKeys(chromedp.CSS("#create-command"), command),
		fill("#create-instances", "2"),
		chromedp.Click(chromedp.CSS("#create-submit")))
	id := c.waitService(t, command)
	c.waitRunning(t, id, 2)
	// The form sent an Idempotency-Key: the master keeps it beside the
	// service, so a create retried after a lost answer makes one service.
	if n := countKeys(t, c, gdpm.DefaultPrefix+"idempotency/"); n != 1 {
		t.Errorf("%d idempotency keys stored after one create from the page, want 1", n)
	}
	p.wait("its two instances running in the page", `document.getElementById('detail-id').textContent === `+js(id)+
		` && document.querySelectorAll('#instances tr[data-state="running"]').length === 2`)
	// The keyboard alone: close the panel, reach the service's button,
	// Enter opens the panel again and the focus lands in it.
	p.do("close the service's panel", chromedp.Click(chromedp.CSS("#detail-close")))
	p.wait("the focus back on the service's button", `document.getElementById('detail').hidden && document.activeElement.dataset.open === `+js(id))
	p.do("press Enter", chromedp.KeyEvent("\r"))
	p.wait("the panel open with the focus in it", `!document.getElementById('detail').hidden && document.activeElement.id === 'detail-h'`+
		` && (r => !!r && r.dataset.service === `+js(id)+`)(document.querySelector('#services tr[aria-current="true"]'))`)
	p.wait("the creation in the events panel, with the short id and the command",
		`[...document.querySelectorAll('#events tr[data-type="service.created"]')].some(r => r.textContent.includes(`+js(id[:8]+" "+command[:20])+`)`+
			` && !r.textContent.includes(`+js(id)+`))`)

	// An error shows in the panel whose control caused it, on screen.
	p.do("scale to too many",
		fill("#scale-instances", "100000"),
		chromedp.Click(chromedp.CSS("#scale-submit")))
	p.wait("the error beside the scale control, in view", `(n => !n.hidden && n.classList.contains('err') && n.textContent.includes('InstanceNum'))`+
		`(document.querySelector('#detail .note')) && `+inViewport("#detail .note"))

	// The merged log: every instance, stderr marked.
	p.do("open the merged log", chromedp.Click(chromedp.CSS("#log-all")))
	p.wait("stdout and stderr lines of both instances in one view", `(ls => new Set(ls.map(l => l.dataset.instance)).size === 2`+
		` && ls.some(l => l.dataset.stream === 'stderr' && l.querySelector('.tag-err') && /err-\d/.test(l.textContent))`+
		` && ls.some(l => l.dataset.stream === 'stdout' && /out-\d/.test(l.textContent)))`+
		`([...document.querySelectorAll('#log-lines .line[data-instance]')])`)
	// In time order: every line carries its capture time, none before the
	// one above it.
	p.wait("the merged log in time order", `(ls => ls.length >= 4 && ls.every((l, i) => l.dataset.ts && (i === 0 || Number(l.dataset.ts) >= Number(ls[i-1].dataset.ts))))`+
		`([...document.querySelectorAll('#log-lines .line[data-stream], #log-lines .line[data-mark]')])`)
	inst := run(p, "read an instance id", chromedp.Evaluate[string](`document.querySelector('#instances button.log').dataset.instance`))
	p.do("show one instance", pick("#log-filter", inst))
	p.wait("only that instance's lines", `(ls => ls.length > 0 && ls.every(l => l.hidden === (l.dataset.instance !== `+js(inst)+`)))`+
		`([...document.querySelectorAll('#log-lines .line[data-instance]')])`)
	p.do("pause the log", chromedp.Click(chromedp.CSS("#log-pause")))
	p.wait("lines held while paused", `document.getElementById('log-pause').getAttribute('aria-pressed') === 'true'`+
		` && /paused · \d+ new line/.test(document.getElementById('log-state').textContent)`)
	p.do("resume the log", chromedp.Click(chromedp.CSS("#log-pause")))
	p.do("show every instance", pick("#log-filter", ""))

	// Every control has a name, and the Log buttons say whose log.
	rep := run(p, "check the accessible names", chromedp.Evaluate[a11yReport](checkA11y))
	if len(rep.Missing) > 0 {
		t.Errorf("interactive elements without an accessible name:\n%s", strings.Join(rep.Missing, "\n"))
	}
	seen := map[string]bool{}
	for _, n := range rep.Logs {
		if seen[n] || !strings.HasPrefix(n, "Log of instance ") {
			t.Errorf("Log buttons named %q: want distinct names saying whose log", rep.Logs)
			break
		}
		seen[n] = true
	}
	if len(rep.Logs) != 2 {
		t.Errorf("%d Log buttons, want 2", len(rep.Logs))
	}

	// A node killed: its lease revoked, as when it expires.
	lost := c.slaves[1].NodeID()
	revokeNodeLease(t, c, lost)
	p.wait("the lost node in the events panel", `[...document.querySelectorAll('#events tr[data-type="node.lost"]')]`+
		`.some(r => r.textContent.includes(`+js(lost[:8])+`))`)
	c.waitRunning(t, id, 2) // its instance moved, or came back with the node
	p.wait("both instances running again in the page, none on the lost node", `(rs => rs.length === 2 && rs.every(r => r.state === 'running' && r.node !== `+js(lost[:8])+`))`+
		`([...document.querySelectorAll('#instances tbody tr')].map(r => ({state: r.dataset.state, node: r.cells[1].textContent})))`)
	p.wait("the moved instance's start marked in the merged log", `[...document.querySelectorAll('#log-lines .line.gap[data-mark="started"]')]`+
		`.some(l => / started \(pid \d+\) · node [0-9a-f]{8}/.test(l.textContent) && l.dataset.ts)`)

	p.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))
	saveScreenshot(t, run(p, "take the 1280 px screenshot", chromedp.FullScreenshot(100)), "ui.png", 1280)

	// A phone: nothing wider than the screen.
	p.do("turn into a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	p.wait("the page to fit 390 px", `document.documentElement.scrollWidth <= 390`)
	t.Logf("at 390x844 the page is %d px wide", run(p, "measure the page", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)))
	for _, sel := range []string{"#nodes", "#services", "#instances", "#events", "#log-lines", "#scale-submit", "#token-forget"} {
		p.wait(sel+" inside the screen", `(r => r.right <= 390 && r.left >= 0)(document.querySelector(`+js(sel)+`).getBoundingClientRect())`)
	}
	p.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))
	saveScreenshot(t, run(p, "take the 390 px screenshot", chromedp.CaptureScreenshot()), "ui-phone.png", 390)
	p.do("back to a desktop", chromedp.EmulateViewport(1280, 900))

	// The master stops: the page says so and greys what it shows.
	addr := c.master.HTTPAddr()
	if err := c.master.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stale := `!document.getElementById('offline').hidden` +
		` && document.getElementById('offline-title').textContent.includes('Master unreachable')` +
		` && document.getElementById('conn').textContent === 'master unreachable'` +
		` && ['nodes', 'services', 'instances', 'events'].every(id => document.getElementById(id).classList.contains('stale'))`
	p.do("wait for the unreachable state", chromedp.Poll[chromedp.Void](stale,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(staleTime)))
	t.Logf("the page showed the master unreachable %v after it stopped", time.Since(start).Round(time.Millisecond))
	p.wait("the time of the last good read", `/Showing what it said at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/.test(document.getElementById('offline').textContent)`)
	p.wait("the banner in view", inViewport("#offline"))

	// A master serves again at the same address: the page recovers alone.
	m2, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: c.etcd.Endpoints(), HTTPAddr: addr, TCPAddr: "127.0.0.1:0", Token: c.token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := m2.Start(ctx); err != nil {
		t.Fatalf("a second master on %s: %v", addr, err)
	}
	t.Cleanup(func() { closeOrFail(t, "second master", m2.Close) })
	p.wait("the page to recover", `document.getElementById('offline').hidden && document.getElementById('conn').textContent === 'connected'`+
		` && !document.querySelector('table.data.stale')`)
	p.wait("the events panel live again", `document.getElementById('events-state').textContent === '(live)'`)

	if problems := run(p, "read the page's problems", chromedp.Evaluate[[]string](`window.__problems`)); len(problems) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(problems, "\n"))
	}
}

// pick chooses value in the select sel, as the user would.
func pick(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(e => { e.value = ` + js(value) +
		`; e.dispatchEvent(new Event('change', {bubbles: true})); })(document.querySelector(` + js(sel) + `))`)
}

// etcdClient connects to the cluster's etcd, closed when the test ends.
func etcdClient(t *testing.T, c *cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// countKeys counts the keys under prefix in the cluster's etcd.
func countKeys(t *testing.T, c *cluster, prefix string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	resp, err := etcdClient(t, c).Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// revokeNodeLease revokes the lease of node's record, which is what etcd
// does when the slave goes silent, without waiting for the TTL.
func revokeNodeLease(t *testing.T, c *cluster, node string) {
	t.Helper()
	cli := etcdClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	resp, err := cli.Get(ctx, gdpm.DefaultPrefix+"nodes/"+node)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("node %s's record: %v %v", node, resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
}
