package rules

import (
	"fmt"
	"slices"
	"strings"
)

// pattern is one compiled match pattern.
type pattern struct {
	raw  string
	segs []string
	wild bool // has a * or ** segment
}

func compilePattern(raw string) (pattern, error) {
	if raw == "" {
		return pattern{}, fmt.Errorf("pattern is empty")
	}
	if strings.TrimSpace(raw) != raw || strings.ContainsAny(raw, " \t\r\n") {
		return pattern{}, fmt.Errorf("pattern %q contains white space", raw)
	}
	p := pattern{raw: raw, segs: strings.Split(raw, ".")}
	for i, s := range p.segs {
		switch {
		case s == "":
			return pattern{}, fmt.Errorf("pattern %q has an empty segment (segment %d)", raw, i+1)
		case s == "*" || s == "**":
			p.wild = true
		case strings.Contains(s, "*"):
			return pattern{}, fmt.Errorf("pattern %q: segment %q mixes * with other characters; a wildcard is a whole segment, * or **", raw, s)
		}
	}
	return p, nil
}

// splitName appends the dot-separated segments of name to dst.
func splitName(dst []string, name string) []string {
	for {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return append(dst, name)
		}
		dst = append(dst, name[:i])
		name = name[i+1:]
	}
}

// matchSegs reports whether the name segments match the pattern segments: * is one
// segment, ** one or more. Empty name segments match nothing (patterns have none). It
// takes O(len(pat)*len(name)) steps whatever the pattern, so no event name can make a
// pattern with several ** backtrack exponentially.
func matchSegs(pat, name []string) bool {
	if !slices.Contains(pat, "**") {
		if len(pat) != len(name) {
			return false
		}
		for i, p := range pat {
			if name[i] == "" || p != "*" && p != name[i] {
				return false
			}
		}
		return true
	}
	// ok[j]: the pattern so far matches the first j name segments.
	var buf [2 * 64]bool
	var prev, cur []bool
	if n := len(name) + 1; n <= len(buf)/2 {
		prev, cur = buf[:n], buf[n:2*n]
	} else {
		prev, cur = make([]bool, n), make([]bool, n)
	}
	prev[0] = true
	for _, p := range pat {
		cur[0] = false
		alive := false
		for j := 1; j <= len(name); j++ {
			seg := name[j-1]
			switch {
			case seg == "":
				cur[j] = false
			case p == "**":
				cur[j] = prev[j-1] || cur[j-1]
			default:
				cur[j] = prev[j-1] && (p == "*" || p == seg)
			}
			alive = alive || cur[j]
		}
		if !alive {
			return false
		}
		prev, cur = cur, prev
	}
	return prev[len(name)]
}

// match appends to dst the indexes of the rules matching the event, ascending and
// without duplicates.
func (s *Set) match(dst []int, name string, segs []string) []int {
	ex := s.exact[name]
	dst = append(dst, ex...)
	for _, w := range s.wild {
		for _, p := range w.patterns {
			if matchSegs(p.segs, segs) {
				dst = append(dst, w.rule)
				break
			}
		}
	}
	if len(ex) > 0 && len(dst) > len(ex) {
		slices.Sort(dst)
		dst = slices.Compact(dst)
	}
	return dst
}
