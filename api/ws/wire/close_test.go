package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestCloseCodes: every CloseCode constant declared in close.go (the table) may be sent
// (1000-4999, not a reserved one), is a protocol code (1000-2999) or an application code
// (4000-4999, Herald's own), never a library's (3000-3999), has a name, and is declared
// once.
func TestCloseCodes(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "close.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[CloseCode]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "CloseCode" {
				continue
			}
			name := v.Names[0].Name
			if name == "CloseCodeMin" || name == "CloseCodeApp" || name == "CloseCodeMax" || name == "closeCodeLibMin" {
				continue
			}
			n, err := strconv.Atoi(v.Values[0].(*ast.BasicLit).Value)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			c := CloseCode(n)
			if other, dup := seen[c]; dup {
				t.Errorf("%s and %s are both %d", name, other, c)
			}
			seen[c] = name
			if !c.Valid() || !(c.Protocol() || c.Application()) {
				t.Errorf("%s = %d: outside the codes Herald may send", name, c)
			}
			if c.String() == "close code "+strconv.Itoa(n) {
				t.Errorf("%s = %d has no name", name, c)
			}
		}
	}
	if len(seen) < 7 {
		t.Fatalf("found %d close codes in close.go, want the whole table", len(seen))
	}
	for _, c := range []CloseCode{999, 1004, 1005, 1006, 1015, 5000} {
		if c.Valid() {
			t.Errorf("%d is valid", c)
		}
	}
}
