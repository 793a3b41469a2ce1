// Package dashboard holds the operators' web page: one self-contained HTML
// document (styles, script and charts inline, no CDN: operators may open it
// from a network with no internet) that refreshes itself from
// GET /dashboard/status, and the form that logs a browser in with the admin
// key (see httpapi.AdminGuard for why a cookie and not the key itself).
package dashboard

import (
	"bytes"
	_ "embed"
	"html/template"
)

//go:embed dashboard.html
var page []byte

//go:embed login.html
var loginSource string

var login = template.Must(template.New("login").Parse(loginSource))

// Pages implements httpapi.Pages.
type Pages struct{}

// Dashboard is the page itself; it holds no data until its script fetches it.
func (Pages) Dashboard() []byte { return page }

// Login is the admin-key form, with an optional message.
func (Pages) Login(message string) []byte {
	var b bytes.Buffer
	if err := login.Execute(&b, map[string]string{"Message": message}); err != nil {
		return []byte("login page unavailable")
	}
	return b.Bytes()
}
