package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strconv"
	"testing"

	"github.com/heraldhq/herald"
)

// TestEveryCodeHasAStatus: every code of the root error table (/errors.go) maps to the
// status its comment there names, so that no code the server sends (a WebSocket error
// frame's bad_frame included) becomes a 500 by falling through; only internal is a 500.
func TestEveryCodeHasAStatus(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../errors.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			code, err := strconv.Unquote(v.Values[0].(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			if v.Comment == nil {
				t.Errorf("%s has no comment naming its status", code)
				continue
			}
			want, err := strconv.Atoi(v.Comment.Text()[:3])
			if err != nil || http.StatusText(want) == "" {
				t.Errorf("%s: comment %q does not start with a status", code, v.Comment.Text())
				continue
			}
			n++
			if got := status(herald.Code(code)); got != want {
				t.Errorf("status(%s) = %d, want %d as errors.go says", code, got, want)
			}
			if want == http.StatusInternalServerError && herald.Code(code) != herald.CodeInternal {
				t.Errorf("%s is a 500", code)
			}
		}
	}
	if n < 13 {
		t.Fatalf("read %d codes from errors.go, want the whole table", n)
	}
}
