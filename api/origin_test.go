package api

import "testing"

// TestOrigins: a * matches within one DNS label of the parsed origin, never across dots,
// into the port, or over characters no host label has.
func TestOrigins(t *testing.T) {
	o := newOrigins([]string{"https://*.example.com", "https://app-*.example.org", "http://localhost:*",
		"https://exact.example.net", "HTTPS://Upper.Example.io/", "http://[::1]:8080", "http://127.0.0.1:*"})
	for origin, want := range map[string]bool{
		"https://eu.example.com":               true,
		"https://EU.Example.COM":               true,
		"https://a.b.example.com":              false, // two labels for one *
		"https://example.com":                  false,
		"https://.example.com":                 false,
		"http://eu.example.com":                false, // scheme
		"https://eu.example.com:8443":          false, // no port in the pattern
		"https://evil.com%2f.example.com":      false,
		"https://evil.com/.example.com":        false,
		"https://user@eu.example.com":          false,
		"https://eu_x.example.com":             false,
		"https://eu.example.com.evil.net":      false,
		"https://evil.net#.example.com":        false,
		"https://app-eu.example.org":           true,
		"https://app-.example.org":             true,
		"https://app.example.org":              false,
		"https://app-eu.x.example.org":         false,
		"http://localhost:5173":                true,
		"http://localhost":                     true, // * allows no port too
		"http://localhost:5173:1":              false,
		"http://localhost:abc":                 false,
		"https://exact.example.net":            true,
		"https://exact.example.net:443":        false,
		"https://upper.example.io":             true,
		"http://[::1]:8080":                    true,
		"http://[::1]:8081":                    false,
		"http://127.0.0.1:8080":                true,
		"http://127.0.0.2:8080":                false,
		"null":                                 false,
		"":                                     false,
		"https://eu.example.com/":              false, // an Origin has no path
		"https://eu.example.com\x00.evil.net":  false,
		"https://xn--bcher-kva.example.com":    true,
		"https://b\u00fccher.example.com":      false, // browsers send the A-label
		"https://*.example.com":                false, // a * sent is a character, not a pattern
		"javascript://eu.example.com":          false,
		"https://eu.example.com.":              false, // a trailing dot is another label
		"https://eu.example.com:443.evil.net":  false,
		"https://eu.example.com:4430000000000": false,
	} {
		if got := o.allow(origin); got != want {
			t.Errorf("allow(%q) = %v, want %v", origin, got, want)
		}
	}
	if !newOrigins([]string{"*"}).allow("null") || newOrigins(nil).allow("https://eu.example.com") {
		t.Error(`"*" must allow any origin and an empty list none`)
	}
	for p, want := range map[string]bool{
		"*": true, "https://*.example.com": true, "http://localhost:*": true, "https://a.b": true,
		"https://ex?mple.com": false, "https://[a-z].example.com": false, "example.com": false,
		"https://example.com/path": false, "https://": false, "https://a..b": false, "*.example.com": false,
		"https://example.com:": false, "https://u@example.com": false,
	} {
		if got := ValidOrigin(p); got != want {
			t.Errorf("ValidOrigin(%q) = %v, want %v", p, got, want)
		}
	}
}
