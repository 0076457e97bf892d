package node

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestClientFlow is a client's first day over real gRPC and TLS: activate,
// create a crypto user, make AES and EC keys, and use them single- and
// multi-part.
func TestClientFlow(t *testing.T) {
	pki := newTestPKI(t, "cluster-flow")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	ctx := t.Context()
	activate(t, c)
	s := cuSession(t, c)

	users, err := c.ListUsers(ctx, &hsmv1.SessionRequest{Session: s})
	if err != nil {
		t.Fatal(err)
	}
	if len(users.GetUsers()) != 2 {
		t.Errorf("ListUsers: %v, want admin and alice", users.GetUsers())
	}

	aes, err := aesKey(t, c, s, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := aes.GetStoredOn(); len(got) != 1 || got[0] != 1 {
		t.Errorf("stored_on = %v, want [1]", got)
	}
	pair, err := ecPair(t, c, s, true, 0)
	if err != nil {
		t.Fatal(err)
	}

	msg := []byte("attack at dawn")
	t.Run("ecdsa", func(t *testing.T) {
		sig, err := c.Sign(ctx, &hsmv1.CryptRequest{Session: s, Key: pair.GetPrivateKey(), Mechanism: mechOf(ck.CKM_ECDSA_SHA256), Data: msg})
		if err != nil {
			t.Fatal(err)
		}
		verify := func(data []byte) error {
			_, err := c.Verify(ctx, &hsmv1.VerifyRequest{Session: s, Key: pair.GetPublicKey(), Mechanism: mechOf(ck.CKM_ECDSA_SHA256), Data: data, Signature: sig.GetData()})
			return err
		}
		if err := verify(msg); err != nil {
			t.Fatalf("verify: %v", err)
		}
		wantErr(t, verify([]byte("attack at dusk")), codes.FailedPrecondition, "CKR_SIGNATURE_INVALID")
	})
	t.Run("aes-gcm", func(t *testing.T) {
		m := &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_GCM), Iv: make([]byte, 12), TagBits: 128, Aad: []byte("hdr")}
		ct, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: aes.GetObject(), Mechanism: m, Data: msg})
		if err != nil {
			t.Fatal(err)
		}
		// A zeroed IV: the HSM chose the IV and returned it.
		if iv := ct.GetIv(); len(iv) != 12 || bytes.Equal(iv, make([]byte, 12)) {
			t.Fatalf("encrypt under a zeroed IV returned IV %x", iv)
		}
		m = &hsmv1.Mechanism{Type: m.Type, Iv: ct.GetIv(), TagBits: m.TagBits, Aad: m.Aad}
		pt, err := c.Decrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: aes.GetObject(), Mechanism: m, Data: ct.GetData()})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pt.GetData(), msg) {
			t.Errorf("decrypt = %q, want %q", pt.GetData(), msg)
		}
	})
	t.Run("multi-part", func(t *testing.T) {
		m := &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_CBC_PAD), Iv: make([]byte, 16)}
		op, err := c.Begin(ctx, &hsmv1.BeginRequest{Session: s, Function: hsmv1.Function_FUNCTION_ENCRYPT, Key: aes.GetObject(), Mechanism: m})
		if err != nil {
			t.Fatal(err)
		}
		var ct []byte
		for _, part := range [][]byte{msg[:5], msg[5:]} {
			out, err := c.Update(ctx, &hsmv1.UpdateRequest{Session: s, Operation: op.GetOperation(), Data: part})
			if err != nil {
				t.Fatal(err)
			}
			ct = append(ct, out.GetData()...)
		}
		last, err := c.Finish(ctx, &hsmv1.FinishRequest{Session: s, Operation: op.GetOperation()})
		if err != nil {
			t.Fatal(err)
		}
		ct = append(ct, last.GetData()...)
		pt, err := c.Decrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: aes.GetObject(), Mechanism: m, Data: ct})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pt.GetData(), msg) {
			t.Errorf("multi-part encrypt then decrypt = %q, want %q", pt.GetData(), msg)
		}
		// A finished operation is gone.
		_, err = c.Update(ctx, &hsmv1.UpdateRequest{Session: s, Operation: op.GetOperation(), Data: msg})
		wantErr(t, err, codes.NotFound, "CKR_OPERATION_NOT_INITIALIZED")
	})
	t.Run("digest", func(t *testing.T) {
		d, err := c.Digest(ctx, &hsmv1.CryptRequest{Session: s, Mechanism: mechOf(ck.CKM_SHA256), Data: msg})
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(msg); !bytes.Equal(d.GetData(), want[:]) {
			t.Errorf("digest = %x, want %x", d.GetData(), want)
		}
	})
	t.Run("objects", func(t *testing.T) {
		found, err := c.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: s, Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_CLASS, uint64(ck.CKO_SECRET_KEY))}})
		if err != nil {
			t.Fatal(err)
		}
		if len(found.GetObjects()) != 1 || found.GetObjects()[0] != aes.GetObject() {
			t.Errorf("FindObjects = %v, want [%d]", found.GetObjects(), aes.GetObject())
		}
		info, err := c.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: s, Object: aes.GetObject()})
		if err != nil {
			t.Fatal(err)
		}
		if !info.GetToken() || info.GetOwner() != cuName || info.GetKeyType() != uint64(ck.CKK_AES) {
			t.Errorf("ObjectInfo = %v", info)
		}
		attrs, err := c.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Session: s, Object: aes.GetObject(),
			Types: []uint64{uint64(ck.CKA_VALUE_LEN), uint64(ck.CKA_VALUE)}})
		if err != nil {
			t.Fatal(err)
		}
		v := attrs.GetValues()
		if len(v) != 2 || v[0].GetRv() != 0 || len(v[0].GetValue()) != 8 || ck.RV(v[1].GetRv()) != ck.CKR_ATTRIBUTE_SENSITIVE {
			t.Errorf("GetAttributes = %v, want VALUE_LEN and a sensitive VALUE", v)
		}
		pub, err := c.ExportPublicKey(ctx, &hsmv1.ObjectRequest{Session: s, Object: pair.GetPublicKey()})
		if err != nil || len(pub.GetData()) == 0 {
			t.Errorf("ExportPublicKey: %v", err)
		}
	})
	t.Run("node", func(t *testing.T) {
		info, err := c.NodeInfo(ctx, &hsmv1.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetNodeId() != 1 || info.GetClusterId() != "cluster-flow" || !info.GetReady() ||
			info.GetTokenObjects() != 3 || info.GetUsers() != 2 || info.GetSessions() != 1 {
			t.Errorf("NodeInfo = %v", info)
		}
		mechs, err := c.Mechanisms(ctx, &hsmv1.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if len(mechs.GetMechanisms()) < 10 {
			t.Errorf("only %d mechanisms", len(mechs.GetMechanisms()))
		}
	})
	t.Run("destroy", func(t *testing.T) {
		must(t)(c.DestroyObject(ctx, &hsmv1.ObjectRequest{Session: s, Object: aes.GetObject()}))
		_, err := c.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: s, Object: aes.GetObject()})
		wantErr(t, err, codes.NotFound, "CKR_OBJECT_HANDLE_INVALID")
	})
}

// TestRestart: a node started again over its data dir has its users and
// keys, and the files have the modes and names the config documents.
func TestRestart(t *testing.T) {
	pki := newTestPKI(t, "cluster-restart")
	cfg := config(t, pki, 1, MasterKeyCreate)
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	activate(t, c)
	key, err := aesKey(t, c, cuSession(t, c), true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(cfg.DataDir, NodeKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("node key: %v, mode %v", err, fi.Mode())
	}
	for _, f := range []string{StoreFile, AuditFile} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); err != nil {
			t.Error(err)
		}
	}

	// clone with no peers: the last HSM left of a cluster restarts with
	// the source it was added with and no one to clone from.
	for _, src := range []MasterKeySource{MasterKeyExisting, MasterKeyCreate, MasterKeyClone} {
		t.Run(src.String(), func(t *testing.T) {
			cfg2 := cfg
			cfg2.Listener, cfg2.MasterKey = listen(t), src
			n2 := start(t, cfg2)
			eventually(t, "ready", n2.Ready)
			c2 := hsmv1.NewHSMClient(dial(t, pki, n2.Addr()))
			s := cuSession(t, c2)
			if _, err := c2.ObjectInfo(t.Context(), &hsmv1.ObjectRequest{Session: s, Object: key.GetObject()}); err != nil {
				t.Errorf("key after restart: %v", err)
			}
			if err := n2.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	pki := newTestPKI(t, "cluster-cfg")
	good := config(t, pki, 1, MasterKeyCreate)
	for _, tc := range []struct {
		name   string
		change func(*Config)
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }},
		{"no listen", func(c *Config) { c.Listener = nil }},
		{"zero node id", func(c *Config) { c.NodeID = 0 }},
		{"no cluster", func(c *Config) { c.ClusterID = "" }},
		{"no server TLS", func(c *Config) { c.ServerTLS = nil }},
		{"server TLS verifies clients itself", func(c *Config) {
			c.ServerTLS = c.ServerTLS.Clone()
			c.ServerTLS.ClientAuth = tls.VerifyClientCertIfGiven
		}},
		{"server TLS verifies no node certificates", func(c *Config) {
			c.ServerTLS = c.ServerTLS.Clone()
			c.ServerTLS.VerifyConnection = nil
		}},
		{"no authorizer", func(c *Config) { c.AuthorizePeer = nil }},
		{"no key source", func(c *Config) { c.MasterKey = 0 }},
		{"peer with own id", func(c *Config) { c.Peers = []PeerAddr{{ID: 1, Addr: "127.0.0.1:1"}} }},
		{"duplicate peer", func(c *Config) { c.Peers = []PeerAddr{{ID: 2, Addr: "a:1"}, {ID: 2, Addr: "b:1"}} }},
		{"peers without TLS", func(c *Config) { c.Peers, c.PeerTLS = []PeerAddr{{ID: 2, Addr: "a:1"}}, nil }},
		{"metrics not on loopback", func(c *Config) { c.MetricsListen = "0.0.0.0:9090" }},
		{"negative timeout", func(c *Config) { c.SessionIdleTimeout = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			if err := c.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Error("New accepted an empty config")
	}
	for _, s := range []string{"create", "clone", "existing"} {
		if m, err := ParseMasterKeySource(s); err != nil || m.String() != s {
			t.Errorf("ParseMasterKeySource(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMasterKeySource("generate"); err == nil {
		t.Error("ParseMasterKeySource accepted generate")
	}
}

// TestNewRefuses: New refuses a data dir it cannot use, and releases what
// it opened (a second New over the same dir gets the same answer, not a
// lock error).
func TestNewRefuses(t *testing.T) {
	pki := newTestPKI(t, "cluster-refuse")
	t.Run("existing without a masking key", func(t *testing.T) {
		cfg := config(t, pki, 1, MasterKeyExisting)
		for range 2 {
			_, err := New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), "holds no masking key") {
				t.Fatalf("New = %v", err)
			}
			cfg.Listener = listen(t)
		}
	})
	t.Run("clone without a masking key or a peer", func(t *testing.T) {
		cfg := config(t, pki, 1, MasterKeyClone)
		for range 2 {
			_, err := New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), "no peer to clone it from") {
				t.Fatalf("New = %v", err)
			}
			cfg.Listener = listen(t)
		}
	})
	t.Run("store without its node key", func(t *testing.T) {
		cfg := config(t, pki, 1, MasterKeyCreate)
		n, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(cfg.DataDir, NodeKeyFile)); err != nil {
			t.Fatal(err)
		}
		cfg.Listener = listen(t)
		if _, err := New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "no node key") {
			t.Fatalf("New = %v", err)
		}
	})
}
