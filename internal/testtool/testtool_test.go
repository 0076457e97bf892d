package testtool

import (
	"testing"
)

func TestRequired(t *testing.T) {
	t.Setenv("COFFER_REQUIRE_TOOLS", "")
	if Required() {
		t.Error("Required() with COFFER_REQUIRE_TOOLS empty")
	}
	t.Setenv("COFFER_REQUIRE_TOOLS", "1")
	if !Required() {
		t.Error("!Required() with COFFER_REQUIRE_TOOLS=1")
	}
}

// Without COFFER_REQUIRE_TOOLS a missing program or file skips the test.
func TestMissingSkips(t *testing.T) {
	t.Setenv("COFFER_REQUIRE_TOOLS", "")
	for name, missing := range map[string]func(testing.TB){
		"Path":    func(tb testing.TB) { Path(tb, "coffer-no-such-program") },
		"Require": func(tb testing.TB) { Require(tb, "go", "coffer-no-such-program") },
		"File":    func(tb testing.TB) { File(tb, "/coffer/no/such/file", "coffer") },
	} {
		var sub *testing.T
		t.Run(name, func(t *testing.T) {
			sub = t
			missing(t)
			t.Error("not skipped")
		})
		if !sub.Skipped() {
			t.Errorf("%s of something missing did not skip", name)
		}
	}
}

func TestDebianPackage(t *testing.T) {
	for name, want := range map[string]string{"aws": "awscli", "pkcs11-tool": "opensc", "javac": "openjdk-17-jdk-headless", "openssl": "openssl"} {
		if got := debianPackage(name); got != want {
			t.Errorf("debianPackage(%q) = %q, want %q", name, got, want)
		}
	}
}
