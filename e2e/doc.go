// Package e2e holds gdpm's end-to-end tests: a real cluster (embedded etcd,
// a master, slaves running real processes) driven through the web interface
// in headless Chromium.
//
// It is a module of its own, so the browser driver stays out of the
// library's go.mod. The tests need /usr/bin/chromium (Debian's chromium
// package) and skip without it, except under CI (env CI set), where they
// fail. GDPM_UPDATE_SCREENSHOT=1 also writes the page's screenshot to
// docs/ui.png, the picture in the README.
package e2e
