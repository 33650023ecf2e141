package e2e

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/capy-pl/gdpm"
)

// TestWebInterfaceHealth: a crash-looping service shows its status word
// (in words, and coloured) and its restarts in the list, beside a healthy
// one with its CPU and memory; the panel says its last error. The
// screenshot is docs/ui-status.png.
func TestWebInterfaceHealth(t *testing.T) {
	needBrowser(t)
	c := startCluster(t, "health-secret", 1)
	ctx := context.Background()
	ok, err := c.client.CreateService(ctx, gdpm.CreateRequest{Name: "web", Command: "sleep 1000", InstanceNum: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	crash, err := c.client.CreateService(ctx, gdpm.CreateRequest{Name: "broken", Command: "sh -c 'echo starting; exit 3'"})
	if err != nil {
		t.Fatal(err)
	}
	c.waitRunning(t, ok, 2)

	p := openBrowser(t)
	p.do("open the page", chromedp.Navigate("http://"+c.master.HTTPAddr()+"/ui/"))
	p.do("enter the token",
		chromedp.SendKeys(chromedp.CSS("#token"), c.token),
		chromedp.Click(chromedp.CSS("#token-save")))
	row := `document.querySelector('#services tr[data-service="` + crash + `"]')`
	p.wait("the crash loop's status word and restarts in the list",
		`(r => r && r.querySelector('.state-crashlooping') && r.querySelector('.state-crashlooping').textContent.includes('crashlooping')`+
			` && Number(r.querySelector('td.restarts').textContent) >= 2)(`+row+`)`)
	p.wait("the healthy service running, with its memory",
		`(r => r && r.querySelector('.state-running') && /iB$/.test(r.querySelector('td.mem').textContent))`+
			`(document.querySelector('#services tr[data-service="`+ok+`"]'))`)
	p.wait("the nodes' host names", `document.querySelector('#nodes tbody').textContent.includes(`+js(hostname(t))+`)`)
	p.do("open the broken service", chromedp.Click(chromedp.CSS(`button[data-open="`+crash+`"]`)))
	p.wait("its last error in the panel", `document.getElementById('detail-health').textContent.includes('exit code 3')`)
	p.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))
	saveScreenshot(t, run(p, "take the screenshot", chromedp.FullScreenshot(100)), "ui-status.png", 1280)
}

func ptr(n int) *int { return &n }

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
