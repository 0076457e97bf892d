// Package layers_test enforces the import rules of ARCHITECTURE.md and
// STYLE.md: imports flow downward, the device imports no networking and no
// cgo, and low layers know nothing of the ones above them.
package layers_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/coffer-hsm/coffer/"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", module+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// imports lists a package's own imports (not its dependencies').
func imports(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, module+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// noNetworking are the packages through which code talks to a network or to
// C. crypto/x509 depends on net for its address types, so the rule is on the
// package's own imports.
var noNetworking = []string{"net", "net/", "C", "os/exec"}

func TestNoNetworkingInTheDevice(t *testing.T) {
	for _, pkg := range []string{"internal/ck", "internal/hsm", "internal/hsm/mech", "internal/store", "internal/audit", "internal/peersync", "internal/backup", "internal/durable", "internal/cryptobackend", "proto/hsmv1/reason"} {
		for _, imp := range imports(t, pkg) {
			for _, f := range noNetworking {
				if imp == f || strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f) {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}

// pkcs11Forbidden is what the PKCS#11 library must not link, internal/cryptoki
// included: it runs inside an application's process and holds no keys.
var pkcs11Forbidden = []string{
	module + "internal/hsm", module + "internal/hsm/", module + "internal/store", module + "internal/audit",
	module + "internal/node", module + "internal/peersync", module + "internal/backup", module + "internal/controlplane",
	module + "internal/cli", module + "internal/bench", module + "cmd/",
}

func TestLayers(t *testing.T) {
	for _, c := range []struct {
		pkg       string
		forbidden []string // exact import paths, or prefixes ending in "/"
		allowed   []string // exact import paths the forbidden ones would catch
	}{
		{"internal/ck", []string{module}, nil},
		{"internal/hsm/mech", []string{module}, []string{module + "internal/cryptobackend"}},
		{"internal/durable", []string{module}, nil},
		{"internal/cryptobackend", []string{module}, nil},
		{"proto/hsmv1/reason", []string{module}, nil},
		{"internal/audit", []string{module}, []string{module + "internal/durable"}},
		{"internal/store", []string{module}, []string{module + "internal/durable", module + "internal/cryptobackend"}},
		{"internal/hsm", []string{module + "internal/store"}, nil},
		{"internal/peersync", []string{module + "internal/hsm", module + "internal/node", module + "internal/client", module + "proto/", "google.golang.org/grpc"}, nil},
		{"internal/pki", []string{module}, []string{module + "internal/cryptobackend", module + "internal/durable"}},
		{"internal/backup", []string{module + "internal/hsm", module + "internal/node", module + "internal/peersync", module + "internal/client", module + "internal/pki", module + "internal/controlplane", module + "proto/"}, nil},
		{"internal/node", []string{module + "internal/pki", module + "internal/client", module + "internal/cli", module + "cmd/"}, nil},
		{"internal/controlplane", []string{module + "internal/hsm", module + "internal/store", module + "internal/backup", module + "internal/node", module + "internal/peersync", module + "internal/client", module + "internal/cli", module + "cmd/"}, nil},
		{"internal/batch", []string{module}, []string{module + "proto/hsmv1"}},
		{"internal/client", []string{module + "internal/hsm", module + "internal/store", module + "internal/node", module + "internal/peersync", module + "internal/audit"}, nil},
		{"internal/bench", []string{module + "internal/hsm", module + "internal/store", module + "internal/node", module + "internal/peersync", module + "internal/audit", module + "internal/cli", module + "cmd/"}, nil},
		// PKCS#11 semantics and the library that exports them reach the
		// cluster through internal/client only: neither links the device,
		// its store, the nodes or the control plane.
		{"internal/cryptoki", pkcs11Forbidden, nil},
		{"cmd/libcoffer_pkcs11", pkcs11Forbidden, nil},
		{"internal/testwait", []string{module}, nil},
		{"internal/testtool", []string{module}, nil},
	} {
		t.Run(c.pkg, func(t *testing.T) {
			for _, d := range deps(t, c.pkg) {
				if d == module+c.pkg || strings.HasPrefix(d, module+c.pkg+"/") || slices.Contains(c.allowed, d) {
					continue
				}
				for _, f := range c.forbidden {
					if d == f || strings.HasSuffix(f, "/") && strings.HasPrefix(d, f) {
						t.Errorf("%s imports %s", c.pkg, d)
					}
				}
			}
		})
	}
}

// testOnly are the packages of test support: only tests import them, so they
// never link into a binary or a library.
var testOnly = []string{module + "internal/testtool", module + "internal/testwait"}

func TestLayersTestSupportOnlyInTests(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list %s...: %v", module, err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if slices.Contains(testOnly, imp) {
				t.Errorf("%s imports %s, which only tests may import", f[0], imp)
			}
		}
	}
}
