// Package web is Herald's browser side: the client (herald.js, a dependency-free ES
// module, with its types in herald.d.ts; packable with npm pack) and the demo inbox
// that herald serve --dev serves at /demo/. Both are embedded into the binary.
//
// The client's tests are in test/ (node --test, no dependencies), its tests against
// the real binary and in a real browser too (make test-web).
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed herald.js herald.d.ts demo/index.html
var files embed.FS

// Demo serves the demo inbox under prefix (say "/demo/"): prefix itself is the page,
// prefix+"herald.js" the client it imports. Anything else is 404.
func Demo(prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, prefix)
		var path, typ string
		switch name {
		case "", "index.html":
			path, typ = "demo/index.html", "text/html; charset=utf-8"
		case "herald.js":
			path, typ = "herald.js", "text/javascript; charset=utf-8"
		case "herald.d.ts":
			path, typ = "herald.d.ts", "text/plain; charset=utf-8"
		default:
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(files, path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", typ)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(b)
	})
}

// Client returns the client module, herald.js.
func Client() []byte {
	b, _ := fs.ReadFile(files, "herald.js")
	return b
}
