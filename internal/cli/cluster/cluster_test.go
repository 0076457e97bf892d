package cluster

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

func TestInfoTable(t *testing.T) {
	in := Info{HSMs: []HSM{
		{Address: "127.0.0.11:1", HSMID: "hsm-1", State: StateActive, TokenObjects: 3, Sessions: 1,
			Peers: []Peer{{NodeID: 2, Connected: true, SyncLagMS: 2.5, BehindRecords: 120, BehindMS: 800}}},
		{Address: "127.0.0.12:1", State: StateUnreachable, Peers: []Peer{}},
	}}
	header, rows := in.Table()
	if len(header) != 8 || len(rows) != 2 {
		t.Fatalf("%q %q", header, rows)
	}
	if want := []string{"127.0.0.11:1", "hsm-1", "ACTIVE", "3", "1", "1/1", "2.5ms", "120 (800.0ms)"}; !slices.Equal(rows[0], want) {
		t.Errorf("row %q, want %q", rows[0], want)
	}
	if rows[1][2] != StateUnreachable || rows[1][5] != "0/0" {
		t.Errorf("row %q", rows[1])
	}
}

func TestMergeAnchors(t *testing.T) {
	a1 := client.TrustAnchor{Reference: 1, Certificate: []byte("one")}
	a2 := client.TrustAnchor{Reference: 2, Certificate: []byte("two")}
	down := client.HSMTrustAnchors{Address: "c", Err: errors.New("HSM c: down")}
	for _, tc := range []struct {
		name    string
		answers []client.HSMTrustAnchors
		want    []string // reference=coverage
	}{
		{"none", []client.HSMTrustAnchors{{Address: "a"}, {Address: "b"}}, nil},
		{"everywhere", []client.HSMTrustAnchors{{Address: "a", Anchors: []client.TrustAnchor{a2, a1}}, {Address: "b", Anchors: []client.TrustAnchor{a1, a2}}},
			[]string{"0x01=full", "0x02=full"}},
		{"not yet on b", []client.HSMTrustAnchors{{Address: "a", Anchors: []client.TrustAnchor{a1, a2}}, {Address: "b", Anchors: []client.TrustAnchor{a1}}},
			[]string{"0x01=full", "0x02=partial"}},
		{"an HSM down", []client.HSMTrustAnchors{{Address: "a", Anchors: []client.TrustAnchor{a1}}, {Address: "b", Anchors: []client.TrustAnchor{a1}}, down},
			[]string{"0x01=partial"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mergeAnchors(tc.answers)
			if err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, a := range got {
				refs = append(refs, a.Reference+"="+a.Coverage)
				if !strings.HasPrefix(a.Certificate, "-----BEGIN CERTIFICATE-----") {
					t.Errorf("certificate %q is not PEM", a.Certificate)
				}
			}
			if !slices.Equal(refs, tc.want) {
				t.Fatalf("got %v, want %v", refs, tc.want)
			}
		})
	}
	if _, err := mergeAnchors([]client.HSMTrustAnchors{down, down}); err == nil || !strings.Contains(err.Error(), "down") {
		t.Fatalf("no HSM answered: %v", err)
	}
}

func TestRefs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
	}{{"0x01", 1}, {"0x0A", 10}, {"0X02", 2}, {"2", 2}, {"0xff", 255}, {"0x", 0}, {"0", 0}, {"x1", 0}, {"0x1g", 0}, {"-1", 0}, {"0x100000000", 0}} {
		got, err := parseRef(tc.in)
		if (tc.want == 0) != (err != nil) || got != tc.want {
			t.Errorf("parseRef(%q) = %d, %v", tc.in, got, err)
		}
	}
	if formatRef(1) != "0x01" || formatRef(10) != "0x0a" {
		t.Errorf("formatRef: %s %s", formatRef(1), formatRef(10))
	}
}

func TestReadCertificate(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyBlock := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("k")})
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{
		{"PEM", write("ca.pem", []byte(certPEM(der))), true},
		{"PEM after a key", write("both.pem", append(keyBlock, certPEM(der)...)), true},
		{"DER", write("ca.der", der), true},
		{"key only", write("key.pem", keyBlock), false},
		{"missing", filepath.Join(dir, "none.pem"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readCertificate(tc.path)
			if tc.ok != (err == nil) || tc.ok && !bytes.Equal(got, der) {
				t.Fatalf("readCertificate = %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestMergeLinks(t *testing.T) {
	out := client.ReplicationLink{Direction: "outbound", ClusterID: "cluster-b", Address: "127.0.0.21:1", State: "in-sync"}
	behind := out
	behind.State, behind.RecordsBehind, behind.Lag = "unreachable", 3, 1500*time.Millisecond
	in := client.ReplicationLink{Direction: "inbound", ClusterID: "cluster-c", State: "receiving"}
	down := client.HSMReplicationLinks{Address: "c", Err: errors.New("HSM c: down")}
	got, err := mergeLinks([]client.HSMReplicationLinks{
		{Address: "a", Links: []client.ReplicationLink{out, in}},
		{Address: "b", Links: []client.ReplicationLink{behind, in}},
		down,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Direction != "inbound" || got[1].Direction != "outbound" {
		t.Fatalf("links %+v", got)
	}
	o := got[1]
	if len(o.HSMs) != 3 || o.HSMs[0].State != "in-sync" || o.HSMs[1].State != "unreachable" || o.HSMs[1].RecordsBehind != 3 ||
		o.HSMs[1].LagMS != 1500 || o.HSMs[2].Address != "c" || o.HSMs[2].State != StateUnreachable {
		t.Fatalf("outbound link %+v", o)
	}
	_, rows := Links{Links: got}.Table()
	if len(rows) != 6 {
		t.Fatalf("rows %q", rows)
	}
	if _, err := mergeLinks([]client.HSMReplicationLinks{down}); err == nil {
		t.Fatal("no HSM answered, no error")
	}
}
