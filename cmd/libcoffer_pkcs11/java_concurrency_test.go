package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// The concurrency program's size: 16 threads of 200 sign rounds, the first
// 40 of which also encrypt, decrypt and digest.
const (
	concThreads      = 16
	concRounds       = 200
	concOtherRounds  = 40
	concJavaDeadline = 150 * time.Second
)

// TestJavaConcurrentSign runs testdata/CofferConcurrentSign.java on
// SunPKCS11 over the library: 16 threads, each with its own Signature,
// Cipher and MessageDigest, pass SunPKCS11's pooled sessions between them
// while they sign, verify, cancel, encrypt, decrypt and digest. The same
// program runs on SoftHSMv2 first, which shows that it is a correct
// PKCS#11 application.
func TestJavaConcurrentSign(t *testing.T) {
	javac := testtool.Path(t, "javac")
	java := testtool.Path(t, "java")
	util := testtool.Path(t, "softhsm2-util")
	testtool.File(t, softHSMPath, "softhsm2")
	if strings.Contains(os.Getenv("LD_PRELOAD"), "libjsig") {
		t.Fatal("LD_PRELOAD names libjsig.so, which crashes the JVM with a Go library loaded")
	}
	coffer(t) // the cluster and the library are there, and the user exists
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*concJavaDeadline+60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, javac, "-d", dir, "testdata/CofferConcurrentSign.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}

	t.Run("softhsm", func(t *testing.T) {
		conf, slot := softHSMToken(t, util, dir)
		// SoftHSMv2 verifies only full-length r||s, and SunPKCS11 drops
		// the leading zero bytes of r and s (1 signature in 65,536 comes
		// out short): on SoftHSMv2 the program signs such a message again
		// rather than verify it. Coffer takes the short form, as PKCS#11
		// says, and is checked with every signature.
		out := runConcurrentSign(t, ctx, java, dir, "name = SoftHSM\nlibrary = "+softHSMPath+"\nslot = "+slot+"\n",
			"1234", "SOFTHSM2_CONF="+conf, "CONCURRENT_SIGN_FULL_LENGTH_ONLY=1")
		checkConcurrentSign(t, out, "")
	})
	t.Run("coffer", func(t *testing.T) {
		out := runConcurrentSign(t, ctx, java, dir, "name = Coffer\nlibrary = "+env.lib+"\nslot = 0\n",
			userPIN, "COFFER_PKCS11_CONFIG="+env.config)
		checkConcurrentSign(t, out, logTail())
	})
	// Newer JDKs (21 on) see the library's PKCS#11 3.0 interface and cancel
	// an abandoned Signature with C_SessionCancel rather than by finishing
	// it: the program runs on every other JDK installed too.
	for _, other := range otherJavas(t, java) {
		t.Run("coffer-"+filepath.Base(filepath.Dir(filepath.Dir(other))), func(t *testing.T) {
			out := runConcurrentSign(t, ctx, other, dir, "name = Coffer\nlibrary = "+env.lib+"\nslot = 0\n",
				userPIN, "COFFER_PKCS11_CONFIG="+env.config)
			checkConcurrentSign(t, out, logTail())
		})
	}
}

// otherJavas returns the java programs of the JDKs in /usr/lib/jvm other
// than java's own, of Java 17 or later (the program is compiled for 17).
func otherJavas(t *testing.T, java string) []string {
	t.Helper()
	seen := map[string]bool{}
	if p, err := filepath.EvalSymlinks(java); err == nil {
		seen[p] = true
	}
	found, _ := filepath.Glob("/usr/lib/jvm/*/bin/java")
	var others []string
	for _, j := range found {
		p, err := filepath.EvalSymlinks(j)
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		if javaMajor(filepath.Join(filepath.Dir(filepath.Dir(p)), "release")) >= 17 {
			others = append(others, p)
		}
	}
	return others
}

// javaMajor reads the major version from a JDK's release file
// (JAVA_VERSION="25.0.3"), 0 if it cannot.
func javaMajor(release string) int {
	b, err := os.ReadFile(release)
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`(?m)^JAVA_VERSION="(\d+)`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// softHSMToken makes a SoftHSMv2 token in a directory of its own and
// returns the configuration file to name in SOFTHSM2_CONF and the token's
// slot id.
func softHSMToken(t *testing.T, util, dir string) (conf, slot string) {
	t.Helper()
	hsmDir := filepath.Join(dir, "softhsm")
	conf = filepath.Join(hsmDir, "softhsm2.conf")
	must(t, "make the SoftHSMv2 token directory", os.MkdirAll(filepath.Join(hsmDir, "tokens"), 0o700))
	cfg := "directories.tokendir = " + filepath.Join(hsmDir, "tokens") + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	must(t, "write softhsm2.conf", os.WriteFile(conf, []byte(cfg), 0o600))
	cmd := exec.CommandContext(t.Context(), util, "--init-token", "--free", "--label", "concurrency", "--so-pin", "1234", "--pin", "1234")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`reassigned to slot (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("softhsm2-util --init-token names no slot:\n%s", out)
	}
	return conf, string(m[1])
}

// runConcurrentSign runs the program with a SunPKCS11 configuration and
// returns its output; it fails the test if the program fails.
func runConcurrentSign(t *testing.T, ctx context.Context, java, dir, p11conf, pin string, env ...string) string {
	t.Helper()
	conf := filepath.Join(dir, fmt.Sprintf("conc-%d.cfg", time.Now().UnixNano()))
	must(t, "write the SunPKCS11 configuration", os.WriteFile(conf, []byte(p11conf), 0o600))
	ctx, cancel := context.WithTimeout(ctx, concJavaDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-cp", dir, "CofferConcurrentSign", conf, pin,
		fmt.Sprint(concThreads), fmt.Sprint(concRounds), fmt.Sprint(concOtherRounds))
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("java (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Errorf("java: %v", err)
	}
	return string(out)
}

// checkConcurrentSign asserts that every round of every thread passed.
func checkConcurrentSign(t *testing.T, out, libLog string) {
	t.Helper()
	n := concThreads * concRounds
	for _, want := range []string{
		fmt.Sprintf("signed: %d", n),
		fmt.Sprintf("verified: %d", n),
		fmt.Sprintf("rejected: %d", n/10),
		fmt.Sprintf("cancelled: %d", n/10),
		fmt.Sprintf("ciphered: %d", concThreads*concOtherRounds),
		fmt.Sprintf("digested: %d", concThreads*concOtherRounds),
		"OK",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("java output lacks %q", want)
		}
	}
	if t.Failed() && libLog != "" {
		t.Logf("--- library log tail:\n%s", libLog)
	}
}
