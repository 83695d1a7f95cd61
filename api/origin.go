package api

import (
	"strings"
)

// origins is the browser origin allow-list (HERALD_ALLOWED_ORIGINS). An entry is an
// origin ("https://app.example.com"), a pattern ("https://*.example.com"), or "*" for
// any origin. With no entry, no browser origin is allowed; requests without an Origin
// header (non-browser clients) always are.
//
// Patterns are matched on the parsed origin, never as text: the scheme must be equal,
// the host must have as many DNS labels as the pattern, and a * stands for letters,
// digits and hyphens within one label ("https://*.example.com" allows
// "https://eu.example.com", never "https://a.b.example.com" nor
// "https://evil.com%2f.example.com"; "https://app-*.example.com" allows
// "https://app-eu.example.com"). A port of * allows any port, or none; a pattern
// without a port allows only an origin without one (the scheme's default port, which
// browsers leave out). Letters match in any case.
type origins struct {
	any      bool
	patterns []originPattern
}

// originPattern is one entry of the allow-list, parsed.
type originPattern struct {
	scheme string
	labels []string // host labels, lower case; a label may hold *
	port   string   // "" (none), "*" (any) or digits
}

func newOrigins(list []string) origins {
	var o origins
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "*" {
			o.any = true
			continue
		}
		if p, ok := parseOriginPattern(s); ok {
			o.patterns = append(o.patterns, p)
		}
	}
	return o
}

func (o origins) allow(origin string) bool {
	if o.any {
		return true
	}
	scheme, host, port, ok := parseOrigin(origin, false)
	if !ok {
		return false
	}
	labels := strings.Split(host, ".")
	for i := range o.patterns {
		if o.patterns[i].match(scheme, labels, port) {
			return true
		}
	}
	return false
}

func (p *originPattern) match(scheme string, labels []string, port string) bool {
	if scheme != p.scheme || len(labels) != len(p.labels) {
		return false
	}
	if p.port != "*" && p.port != port {
		return false
	}
	for i, l := range p.labels {
		if !matchLabel(l, labels[i]) {
			return false
		}
	}
	return true
}

// matchLabel matches one host label against a pattern label in which each * stands
// for a run of letters, digits and hyphens (what a host label is made of).
func matchLabel(pattern, label string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == label
	}
	if !isLDH(label, false) {
		return false
	}
	// Classic glob matching with one backtrack point: * has no other meaning here.
	pi, li, star, mark := 0, 0, -1, 0
	for li < len(label) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, li
			pi++
		case pi < len(pattern) && pattern[pi] == label[li]:
			pi++
			li++
		case star >= 0:
			pi, mark = star+1, mark+1
			li = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// isLDH reports whether s is a host label: letters, digits and hyphens (and * when
// star is set), not empty.
func isLDH(s string, star bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case c == '*' && star:
		default:
			return false
		}
	}
	return true
}

// parseOrigin splits an Origin header value (or, with pattern, an allow-list entry)
// into its lower-case scheme, host and port. An origin is scheme://host[:port] and
// nothing more: no user info, path, query or fragment. The host is a name of DNS labels
// (with * in a pattern) or an IP address, an IPv6 one in brackets.
func parseOrigin(s string, pattern bool) (scheme, host, port string, ok bool) {
	s = strings.ToLower(s)
	scheme, rest, found := strings.Cut(s, "://")
	if !found || !isScheme(scheme) {
		return "", "", "", false
	}
	if pattern {
		rest = strings.TrimSuffix(rest, "/")
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@\\%") {
		return "", "", "", false
	}
	host = rest
	if strings.HasPrefix(rest, "[") { // [v6]:port
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "", false
		}
		host, rest = rest[:end+1], rest[end+1:]
		if strings.ContainsAny(host[1:end], "[]*") || end == 1 {
			return "", "", "", false
		}
		if rest != "" {
			if rest[0] != ':' {
				return "", "", "", false
			}
			port = rest[1:]
			if port == "" {
				return "", "", "", false
			}
		}
	} else if h, pt, hasPort := strings.Cut(rest, ":"); hasPort {
		host, port = h, pt
		if port == "" {
			return "", "", "", false
		}
	}
	if port != "" && !(pattern && port == "*") && !isDigits(port) {
		return "", "", "", false
	}
	if !strings.HasPrefix(host, "[") {
		for _, l := range strings.Split(host, ".") {
			if !isLDH(l, pattern) {
				return "", "", "", false
			}
		}
	}
	return scheme, host, port, true
}

func parseOriginPattern(s string) (originPattern, bool) {
	scheme, host, port, ok := parseOrigin(strings.TrimSpace(s), true)
	if !ok {
		return originPattern{}, false
	}
	labels := []string{host}
	if !strings.HasPrefix(host, "[") {
		labels = strings.Split(host, ".")
	}
	return originPattern{scheme: scheme, labels: labels, port: port}, true
}

func isScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidOrigin reports whether p can be an entry of the origin allow-list: "*", or an
// origin or pattern as the origins type describes.
func ValidOrigin(p string) bool {
	p = strings.TrimSpace(p)
	if p == "*" {
		return true
	}
	_, ok := parseOriginPattern(p)
	return ok
}
