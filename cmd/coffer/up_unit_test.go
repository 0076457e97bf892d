package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/durable"
)

// What coffer up prints names where the secrets are, never a secret.
func TestUpPrintsNoSecret(t *testing.T) {
	up := upFile{
		Endpoint: "http://127.0.0.1:2280", Region: "us-east-1", AccessKeyID: "AKIAUPTESTUPTEST0001",
		SecretAccessKey: "aws-secret-Zq8v0pXw3LkT9", ClusterID: "cluster-aaaaaaaaaaa",
		HSMAddresses: []string{"127.0.0.11:2223", "127.0.0.12:2223"}, TrustAnchor: "/d/customerCA.crt",
		PKCS11Module: "/b/libcoffer_pkcs11.so", PKCS11Config: "/d/pkcs11.json",
		Admin:      upUser{Username: "admin", Password: "admin-pw-Hk27xQ"},
		CryptoUser: upUser{Username: "app_user", Password: "cu-pw-Wm93bR"},
	}
	var out bytes.Buffer
	printUpUsage(&out, up, "/d/up.json")
	got := out.String()
	for _, secret := range []string{up.SecretAccessKey, up.Admin.Password, up.CryptoUser.Password} {
		if strings.Contains(got, secret) {
			t.Errorf("coffer up prints the secret %q:\n%s", secret, got)
		}
	}
	// The CLI line can be pasted anywhere: it names this binary's absolute path.
	if exe := runningBinary(); !filepath.IsAbs(exe) || !strings.Contains(got, "\n  "+shellQuote(exe)+" cli --cluster-config /d/pkcs11.json\n") {
		t.Errorf("coffer up's CLI line does not name the binary %q:\n%s", exe, got)
	}
	for _, want := range []string{"/d/up.json", "0600", ".secret_access_key", ".crypto_user.password", up.AccessKeyID, up.ClusterID} {
		if !strings.Contains(got, want) {
			t.Errorf("coffer up's message lacks %q:\n%s", want, got)
		}
	}
}

// Files holding secrets are 0600 whatever was there before: a leftover
// temporary file, or an older file readable by others.
func TestSecretFileModes(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, path string)
		write func(t *testing.T, path string) // the code under test
	}{
		{"written over a world-readable temporary file", func(t *testing.T, path string) {
			if err := os.WriteFile(path+".tmp", []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			if err := durable.WriteFileAll(path, []byte(`{"secret":"s"}`), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"up.json of an earlier run readable by others", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(`{"crypto_user":{"username":"u","password":"p"}}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			prev, err := readUpFile(path, io.Discard)
			if err != nil || prev.CryptoUser.Password != "p" {
				t.Fatalf("%+v %v", prev, err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "up.json")
			c.setup(t, path)
			c.write(t, path)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}
