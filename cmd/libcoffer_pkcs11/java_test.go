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
	"github.com/miekg/pkcs11"
)

// TestJavaSunPKCS11 runs testdata/CofferSunPKCS11.java on Java 17's
// SunPKCS11 provider over the library: a KeyStore lists a token key, an EC
// key pair is generated, SHA256withECDSA signs and verifies, and
// AES/GCM/NoPadding encrypts and decrypts. The JVM runs without libjsig.so:
// preloading it with a Go library crashes on a fault inside Go.
func TestJavaSunPKCS11(t *testing.T) {
	javac := testtool.Path(t, "javac")
	java := testtool.Path(t, "java")
	l := coffer(t)
	if strings.Contains(os.Getenv("LD_PRELOAD"), "libjsig") {
		t.Fatal("LD_PRELOAD names libjsig.so, which crashes the JVM with a Go library loaded")
	}

	// A token AES key for the KeyStore to list, made through miekg.
	s := l.session(t)
	label := randomName("java-")
	key, err := l.ctx.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_LABEL, label),
		attr(pkcs11.CKA_ID, []byte(label)), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true),
	})
	must(t, "C_GenerateKey token key", err)
	t.Cleanup(func() { _ = l.ctx.DestroyObject(s, key) })

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, javac, "-d", dir, "testdata/CofferSunPKCS11.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "coffer.cfg")
	must(t, "write the SunPKCS11 configuration", os.WriteFile(conf, []byte("name = Coffer\nlibrary = "+env.lib+"\nslot = 0\n"), 0o600))
	cmd := exec.CommandContext(ctx, java, "-cp", dir, "CofferSunPKCS11", conf, userPIN, label)
	cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+env.config)
	out, err := cmd.CombinedOutput()
	t.Logf("java:\n%s", out)
	if err != nil {
		t.Fatalf("java: %v\n--- library log tail:\n%s", err, logTail())
	}
	stored := label + "-stored"
	for _, want := range []string{
		"listed " + label + ": true",
		"listed key is secret: true",
		"ec key pair: EC X.509",
		"SHA256withECDSA verify (Coffer): true",
		"SHA256withECDSA verify (SunEC): true",
		"SHA256withECDSA verify other data: false",
		"AES/GCM/NoPadding generated key: round trip true, tag checked true",
		"AES/GCM/NoPadding listed key: round trip true, tag checked true",
		"stored " + stored + ": true",
		"AES/GCM/NoPadding stored key: round trip true, tag checked true",
		"deleted " + stored + ": true",
		"OK",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("java output lacks %q", want)
		}
	}
}
