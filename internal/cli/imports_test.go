package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the package comment's promise for cli and every
// package below it: the cluster only through internal/client, never the
// device, the node, the store or peersync.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/coffer-hsm/coffer/internal/"
	for _, d := range strings.Fields(string(out)) {
		for _, f := range []string{"hsm", "node", "store", "peersync", "audit"} {
			if d == module+f || strings.HasPrefix(d, module+f+"/") {
				t.Errorf("internal/cli depends on %s", d)
			}
		}
	}
}
