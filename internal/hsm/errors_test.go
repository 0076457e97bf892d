package hsm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestKindReasons reads this package's error table: every *Kind names a
// reason of proto/hsmv1/reason, and no two share one, so a client can tell
// every kind of refusal apart on the wire even where their CKR codes are
// the same.
func TestKindReasons(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 {
			return true
		}
		u, ok := vs.Values[0].(*ast.UnaryExpr)
		if !ok {
			return true
		}
		lit, ok := u.X.(*ast.CompositeLit)
		if !ok || lit.Type.(*ast.Ident).Name != "Kind" {
			return true
		}
		name := vs.Names[0].Name
		if len(lit.Elts) != 3 {
			t.Errorf("%s: want {RV, Reason, msg}", name)
			return true
		}
		sel, ok := lit.Elts[1].(*ast.SelectorExpr)
		if !ok || sel.X.(*ast.Ident).Name != "reason" {
			t.Errorf("%s: its reason is not a constant of proto/hsmv1/reason", name)
			return true
		}
		if other, dup := seen[sel.Sel.Name]; dup {
			t.Errorf("%s and %s share reason.%s", name, other, sel.Sel.Name)
		}
		seen[sel.Sel.Name] = name
		return true
	})
	if len(seen) < 50 {
		t.Fatalf("found %d kinds in errors.go; the table has more", len(seen))
	}
}
