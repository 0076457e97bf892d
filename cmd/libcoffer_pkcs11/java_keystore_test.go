package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// TestJavaKeyStore runs testdata/CofferKeyStore.java on Java 17's SunPKCS11
// provider over the library: KeyStore.setEntry of an AES key the provider's
// KeyGenerator made (a session key, which SunPKCS11 stores with
// C_CopyObject), and of an EC private key with its certificate; both are
// loaded back by alias from a new KeyStore and used, then deleted.
func TestJavaKeyStore(t *testing.T) {
	javac := testtool.Path(t, "javac")
	java := testtool.Path(t, "java")
	coffer(t) // the cluster, and the library loaded here too
	if strings.Contains(os.Getenv("LD_PRELOAD"), "libjsig") {
		t.Fatal("LD_PRELOAD names libjsig.so, which crashes the JVM with a Go library loaded")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, javac, "-d", dir, "testdata/CofferKeyStore.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "coffer.cfg")
	must(t, "write the SunPKCS11 configuration", os.WriteFile(conf, []byte("name = Coffer\nlibrary = "+env.lib+"\nslot = 0\n"), 0o600))
	secret, private := randomName("ks-aes-"), randomName("ks-ec-")
	cmd := exec.CommandContext(ctx, java, "-cp", dir, "CofferKeyStore", conf, userPIN, secret, private)
	cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+env.config)
	out, err := cmd.CombinedOutput()
	t.Logf("java:\n%s", out)
	if err != nil {
		t.Fatalf("java: %v\n--- library log tail:\n%s", err, logTail())
	}
	for _, want := range []string{
		"stored " + secret + ": true",
		"entry is a secret key: true",
		"loaded key: AES",
		"AES/CBC generated encrypts, loaded decrypts: true",
		"AES/CBC loaded encrypts, generated decrypts: true",
		"certificate verifies: true",
		"stored " + private + ": true",
		"entry is a private key: true",
		"reloaded " + secret + " decrypts: true",
		"reloaded " + private + " chain: 1",
		"reloaded certificate is the stored one: true",
		"reloaded " + private + " signs (SunEC verifies): true",
		"deleted: true true",
		"OK",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("java output lacks %q", want)
		}
	}
}
