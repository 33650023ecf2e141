package gdpm

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// uiFS is the web interface: a page, a script and a style sheet, built into
// the binary so the master serves them with no build step and no network.
//
//go:embed ui
var uiFS embed.FS

// uiContentTypes gives each kind of file under ui/ its Content-Type, so the
// answer does not depend on the host's MIME tables.
var uiContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// uiCSP lets the page load only its own files and talk only to its own
// master: no inline script or style, no frames, no plugins.
const uiCSP = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiAsset is one embedded file, ready to serve.
type uiAsset struct {
	body        []byte
	contentType string
	etag        string
}

// uiAssets maps a file's path under ui/ to the file.
var uiAssets = loadUIAssets()

func loadUIAssets() map[string]uiAsset {
	assets := map[string]uiAsset{}
	err := fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := uiContentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := uiFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		assets[strings.TrimPrefix(p, "ui/")] = uiAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("gdpm: embedded ui: " + err.Error()) // the files are part of the binary
	}
	return assets
}

// isUIPath reports whether path belongs to the web interface, whose files
// are served without the token: the page asks for the token itself.
func isUIPath(path string) bool {
	return path == "/ui" || strings.HasPrefix(path, "/ui/")
}

// routeUI registers the web interface on r: GET /ui redirects to /ui/, and
// GET /ui/FILE serves the embedded files (index.html for /ui/).
func (m *Master) routeUI(r, names *httprouter.Router) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(method, "/ui", redirectToUI)
		r.Handle(method, "/ui/*file", handleUI)
		nameRoute(names, method, "/ui", "/ui")
		nameRoute(names, method, "/ui/*file", "/ui")
	}
}

// redirectToUI sends /ui to /ui/ with a relative Location, so it also works
// when an embedding program mounts Handler under a prefix.
func redirectToUI(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Location", "ui/")
	w.WriteHeader(http.StatusMovedPermanently)
}

func handleUI(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	name := strings.TrimPrefix(p.ByName("file"), "/")
	if name == "" {
		name = "index.html"
	}
	a, ok := uiAssets[name]
	if !ok {
		writeError(w, http.StatusNotFound, "no such file in the web interface")
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	// Revalidate every time: the ETag makes that a 304 until the binary
	// changes, and an upgraded master never serves a stale script.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
