package main

import (
	"regexp"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// pkcs11-tool -L shows the token serial as the cluster id without its
// "cluster-" prefix ("cluster-local": "local"), not a cut-off "ster-…".
func TestTokenSerialShown(t *testing.T) {
	tool := testtool.Path(t, "pkcs11-tool")
	needCluster(t)
	out := run(t, tool, "--module", env.lib, "-L")
	m := regexp.MustCompile(`serial num\s*:\s*(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no serial in pkcs11-tool -L:\n%s", out)
	}
	if m[1] != "local" {
		t.Fatalf("serial %q, want %q (cluster-local without its prefix):\n%s", m[1], "local", out)
	}
}
