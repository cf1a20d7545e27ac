// Package ui holds the dashboard's server-rendered pages: embedded
// html/template files parsed once at start, the typed page structs the
// templates print, static assets served under content-hash URLs, and the
// SVG charts. It knows neither HTTP routing nor the database.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// StaticPrefix is the URL path under which assets are served.
const StaticPrefix = "/static/"

// Pages are the templates a Renderer knows; rendering any other name is an
// error.
var pageNames = [...]string{"login", "error", "overview", "domain", "reports", "report", "quarantine", "settings", "settings_domain", "users", "tokens", "account", "audit", "promotions"}

// Asset is one static file with its content-hash name.
type Asset struct {
	Name        string // as in the source tree: "style.css"
	Path        string // URL path: "/static/style.3f2a9c1e.css"
	ContentType string
	Body        []byte
	ETag        string
}

// Renderer renders the pages. It is safe for concurrent use: everything is
// parsed in New and only read afterwards.
type Renderer struct {
	pages  map[string]*template.Template
	byName map[string]*Asset
	byPath map[string]*Asset
}

// New parses every template and hashes every asset; a missing or broken
// template fails here, at start, not on the first request.
func New() (*Renderer, error) {
	r := &Renderer{pages: map[string]*template.Template{}, byName: map[string]*Asset{}, byPath: map[string]*Asset{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])[:12]
		name := strings.TrimPrefix(p, "static/")
		ext := path.Ext(name)
		a := &Asset{
			Name:        name,
			Path:        StaticPrefix + strings.TrimSuffix(name, ext) + "." + h + ext,
			ContentType: mime.TypeByExtension(ext),
			Body:        body,
			ETag:        `"` + h + `"`,
		}
		if a.ContentType == "" {
			a.ContentType = "application/octet-stream"
		}
		r.byName[name] = a
		r.byPath[a.Path] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading static assets: %w", err)
	}
	funcs := template.FuncMap{
		"static": r.StaticURL,
		"num":    Num,
		"pct":    Percent,
		"date":   func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
		"inc":    func(i int) int { return i + 1 },
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/promote_panel.html")
	if err != nil {
		return nil, fmt.Errorf("parsing layout: %w", err)
	}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("cloning layout for %s: %w", name, err)
		}
		if _, err := t.ParseFS(templateFS, "templates/"+name+".html"); err != nil {
			return nil, fmt.Errorf("parsing page %s: %w", name, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// Render writes page with data. The page is rendered into a buffer first
// so that a template error never leaves half a page on the wire.
func (r *Renderer) Render(w io.Writer, page string, data any) error {
	t, ok := r.pages[page]
	if !ok {
		return fmt.Errorf("rendering page %q: no such page", page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", data); err != nil {
		return fmt.Errorf("rendering page %s: %w", page, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// StaticURL is the content-hash URL of an asset; a name that is not
// embedded is an error, so a template naming it fails to render.
func (r *Renderer) StaticURL(name string) (string, error) {
	a, ok := r.byName[name]
	if !ok {
		return "", fmt.Errorf("no static asset %q", name)
	}
	return a.Path, nil
}

// Asset returns the asset served at the URL path p.
func (r *Renderer) Asset(p string) (*Asset, bool) {
	a, ok := r.byPath[p]
	return a, ok
}
