package e2e

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/capy-pl/gdpm"
)

// TestWebInterfaceServices: a service created with a name shows the name
// in the list and the panel; Stop, Start and Restart work from the panel,
// and a restart shows its progress.
func TestWebInterfaceServices(t *testing.T) {
	needBrowser(t)
	c := startCluster(t, "svc-secret", 1)
	p := openBrowser(t)
	p.do("open the page", chromedp.Navigate("http://"+c.master.HTTPAddr()+"/ui/"))
	p.do("enter the token",
		chromedp.SendKeys(chromedp.CSS("#token"), c.token),
		chromedp.Click(chromedp.CSS("#token-save")))

	const command = "sleep 1000"
	p.do("create a named service from the form",
		chromedp.SendKeys(chromedp.CSS("#create-name"), "web-e2e"),
		chromedp.SendKeys(chromedp.CSS("#create-command"), command),
		fill("#create-instances", "2"),
		chromedp.Click(chromedp.CSS("#create-submit")))
	id := c.waitService(t, command)
	c.waitRunning(t, id, 2)
	p.wait("the name in the list and the panel", `document.querySelector('#services tbody').textContent.includes('web-e2e')`+
		` && document.getElementById('detail-name').textContent === 'web-e2e'`+
		` && document.querySelectorAll('#instances tr[data-state="running"]').length === 2`)

	p.do("stop it", chromedp.Click(chromedp.CSS("#stop")))
	p.wait("the page to show it stopped", `document.querySelector('#services tbody').textContent.includes('stopped')`+
		` && document.querySelectorAll('#instances tbody tr').length === 0 && !document.getElementById('start').hidden`)
	d, err := c.client.Service(context.Background(), "web-e2e")
	if err != nil || d.Status != gdpm.ServiceStopped || d.InstanceNum != 2 {
		t.Fatalf("after Stop: %+v %v", d.RolloutState, err)
	}

	p.do("start it", chromedp.Click(chromedp.CSS("#start")))
	c.waitRunning(t, id, 2)
	p.wait("two instances again", `document.querySelectorAll('#instances tr[data-state="running"]').length === 2 && !document.getElementById('stop').hidden`)

	p.do("restart it", chromedp.Click(chromedp.CSS("#restart")))
	p.wait("the rollout's progress", `document.getElementById('detail-rollout').textContent.includes('instances updated')`+
		` || document.querySelector('#services tbody').textContent.includes('updating')`)
	p.wait("the restart to finish", `document.querySelector('#services tbody').textContent.includes('running')`+
		` && document.getElementById('detail-rollout').hidden && document.querySelectorAll('#instances tr[data-state="running"]').length === 2`)
}
