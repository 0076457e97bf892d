package cli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSignAndVerifyToken(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("coffer quorum token v1\x00...")
	for _, c := range []struct {
		name string
		key  crypto.Signer
	}{{"ecdsa", ec}, {"rsa", rk}} {
		t.Run(c.name, func(t *testing.T) {
			sig, err := SignToken(c.key, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyToken(c.key.Public(), data, sig); err != nil {
				t.Errorf("own signature: %v", err)
			}
			if VerifyToken(c.key.Public(), append(data, 'x'), sig) == nil {
				t.Error("a signature of other data verified")
			}
		})
	}
	if VerifyToken(ec.Public(), data, mustSign(t, rk, data)) == nil {
		t.Error("an RSA signature verified under an EC key")
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := SignToken(ed, data); err == nil {
		t.Error("an Ed25519 key signed a token")
	}
}

func mustSign(t *testing.T, k crypto.Signer, data []byte) []byte {
	sig, err := SignToken(k, data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token.json")
	tf := &TokenFile{Version: TokenVersion, Service: ServiceUser, Token: "abcd", Issuer: "admin",
		Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Data: []byte{1, 2, 3}, Approvals: []Approval{}}
	tf.Approve("admin2", []byte("sig1"))
	tf.Approve("admin3", []byte("sig2"))
	tf.Approve("admin2", []byte("sig3")) // replaces
	if err := tf.Write(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Token != "abcd" || !back.Expires.Equal(tf.Expires) || string(back.Data) != "\x01\x02\x03" || len(back.Approvals) != 2 ||
		string(back.Approvals[0].Signature) != "sig3" {
		t.Fatalf("read back %+v", back)
	}
	a, err := LoadApprovals(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.Token != "abcd" || len(a.Signatures) != 2 || a.Signatures[1].Username != "admin3" {
		t.Errorf("approvals %+v", a)
	}
	if a, err := LoadApprovals(""); a != nil || err != nil {
		t.Errorf("no file: %v %v", a, err)
	}

	reg, err := NewRegistrationToken(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	regPath := filepath.Join(dir, "reg.json")
	if err := reg.Write(regPath); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadApprovals(regPath); err == nil || !strings.Contains(err.Error(), "registration token") {
		t.Errorf("a registration token approved an operation: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "junk.json"), []byte(`{"version":"x"}`), 0o600, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "junk.json")); err == nil {
		t.Error("junk read as a token")
	}
}

func TestServices(t *testing.T) {
	for cli, hsm := range map[string]string{ServiceUser: "user-management", ServiceQuorum: "quorum-management"} {
		if got, err := HSMService(cli); err != nil || got != hsm {
			t.Errorf("HSMService(%s) = %s, %v", cli, got, err)
		}
		if got := CLIService(hsm); got != cli {
			t.Errorf("CLIService(%s) = %s", hsm, got)
		}
	}
	if _, err := HSMService(ServiceRegistration); err == nil {
		t.Error("registration is not an HSM service")
	}
}
