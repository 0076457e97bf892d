package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenSSL runs the customer's side of CloudHSM's initialization with a
// real openssl, exactly as the guide says, and checks that Coffer accepts
// the result and serves TLS under it. It is skipped (with a message) only
// when openssl is not on PATH, and fails then under COFFER_REQUIRE_TOOLS
// (as CI runs it).
func TestOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("COFFER_REQUIRE_TOOLS") != "" {
			t.Fatalf("openssl not on PATH (Debian package openssl): %v", err)
		}
		t.Skipf("openssl not on PATH, the real-openssl chain is not tested: %v", err)
	}
	dir := t.TempDir()
	run := func(t *testing.T, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, stderr.Bytes())
		}
		return out
	}
	read := func(t *testing.T, name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(t *testing.T, name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s", bytes.TrimSpace(run(t, "version")))

	// The customer's CA, as CloudHSM's guide makes it.
	run(t, "genrsa", "-out", "customerCA.key", "2048")
	run(t, "req", "-new", "-x509", "-days", "3652", "-key", "customerCA.key", "-out", "customerCA.crt", "-subj", "/CN=Customer CA")
	caKey, err := DecodePrivateKeyPEM(read(t, "customerCA.key"))
	if err != nil {
		t.Fatal(err)
	}
	anchor := read(t, "customerCA.crt")

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  crypto.Signer
	}{{"ECDSA P-256 cluster key", mustKey(t)}, {"RSA-2048 cluster key", rsaKey}} {
		t.Run(tt.name, func(t *testing.T) {
			const clusterID = "cluster-ossl1"
			csr, err := NewClusterCSR(tt.key, clusterID)
			if err != nil {
				t.Fatal(err)
			}
			write(t, "cluster.csr", csr)
			run(t, "req", "-in", "cluster.csr", "-noout", "-verify")

			// The HSM certificate check of CloudHSM's guide: same public key.
			hsm, err := NewHsmCertificate(tt.key, clusterID, "hsm-ossl1", time.Now(), time.Now().AddDate(10, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			write(t, "hsm.crt", EncodeCertificatesPEM(hsm))
			if a, b := run(t, "x509", "-in", "hsm.crt", "-pubkey", "-noout"), run(t, "req", "-in", "cluster.csr", "-pubkey", "-noout"); !bytes.Equal(a, b) {
				t.Fatalf("HSM certificate key\n%s\nCSR key\n%s", a, b)
			}

			// The customer signs the CSR: the command of the brief.
			run(t, "x509", "-req", "-days", "3652", "-in", "cluster.csr", "-CA", "customerCA.crt", "-CAkey", "customerCA.key", "-CAcreateserial", "-out", "cluster.crt")
			run(t, "verify", "-CAfile", "customerCA.crt", "cluster.crt")
			signed := read(t, "cluster.crt")
			now := time.Now().Add(time.Minute)
			cc, err := VerifyClusterCertificate(csr, signed, anchor, now)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("openssl x509 -req made a version %d certificate, basic constraints %v", cc.Certificate.Version, cc.Certificate.BasicConstraintsValid)

			// Refusals with real openssl files: another anchor, another CSR's certificate.
			_, err = VerifyClusterCertificate(csr, signed, EncodeCertificatesPEM(newTestCA(t, "Other").cert), now)
			wantReason(t, err, ErrNotChained)
			otherCSR, _ := NewClusterCSR(mustKey(t), clusterID)
			_, err = VerifyClusterCertificate(otherCSR, signed, anchor, now)
			wantReason(t, err, ErrKeyMismatch)

			// A node serves TLS under the openssl-signed cluster certificate;
			// a client holding only customerCA.crt accepts it.
			nodeKey := mustKey(t)
			nodeCert, err := IssueNodeCert(tt.key, cc.Certificate, NodeCertRequest{
				HsmID: "hsm-ossl1", PublicKey: nodeKey.Public(), IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: now.AddDate(1, 0, 0),
			})
			if err != nil {
				t.Fatal(err)
			}
			tc, err := NodeTLSCertificate(nodeKey, nodeCert, cc.Chain())
			if err != nil {
				t.Fatal(err)
			}
			server, err := NodeServerConfig(tc, cc.Trust(clockAt(now)))
			if err != nil {
				t.Fatal(err)
			}
			anchorCert, err := DecodeCertificatePEM(anchor, "anchor")
			if err != nil {
				t.Fatal(err)
			}
			client, err := ClusterClientConfig(Trust{TrustAnchor: anchorCert, ClusterID: clusterID, Now: clockAt(now)}, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if r := handshake(t, server, client); r.clientErr != nil || r.serverErr != nil || r.reply != "ok" {
				t.Fatalf("client %v, server %v, reply %q", r.clientErr, r.serverErr, r.reply)
			}
			// And node-to-node mutual TLS, both ends pinning the v1 cluster certificate.
			peerKey := mustKey(t)
			peerCert, err := IssueNodeCert(tt.key, cc.Certificate, NodeCertRequest{
				HsmID: "hsm-ossl2", PublicKey: peerKey.Public(), IPs: []net.IP{net.IPv4(127, 0, 0, 2)}, NotAfter: now.AddDate(1, 0, 0),
			})
			if err != nil {
				t.Fatal(err)
			}
			peerTC, err := NodeTLSCertificate(peerKey, peerCert, cc.Chain())
			if err != nil {
				t.Fatal(err)
			}
			peer, err := NodeClientConfig(peerTC, cc.Trust(clockAt(now)), "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			r := handshake(t, server, peer)
			if r.clientErr != nil || r.serverErr != nil || r.reply != "ok" {
				t.Fatalf("mTLS: client %v, server %v, reply %q", r.clientErr, r.serverErr, r.reply)
			}
			if id, ok := PeerNode(r.server); !ok || id.HsmID != "hsm-ossl2" {
				t.Fatalf("server sees %+v, %v", id, ok)
			}
		})
	}

	t.Run("through an openssl intermediate CA", func(t *testing.T) {
		write(t, "v3_ca.ext", []byte("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"))
		run(t, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "issuing.key", "-out", "issuing.csr", "-subj", "/CN=Customer Issuing CA")
		run(t, "x509", "-req", "-days", "3652", "-in", "issuing.csr", "-CA", "customerCA.crt", "-CAkey", "customerCA.key",
			"-CAcreateserial", "-extfile", "v3_ca.ext", "-out", "issuing.crt")
		csr, err := NewClusterCSR(mustKey(t), "cluster-ossl2")
		if err != nil {
			t.Fatal(err)
		}
		write(t, "cluster2.csr", csr)
		run(t, "x509", "-req", "-days", "3652", "-in", "cluster2.csr", "-CA", "issuing.crt", "-CAkey", "issuing.key", "-CAcreateserial", "-out", "cluster2.crt")
		now := time.Now().Add(time.Minute)
		withChain := append(read(t, "cluster2.crt"), read(t, "issuing.crt")...)
		if _, err := VerifyClusterCertificate(csr, withChain, anchor, now); err != nil {
			t.Fatal(err)
		}
		_, err = VerifyClusterCertificate(csr, read(t, "cluster2.crt"), anchor, now)
		wantReason(t, err, ErrNotChained)
		// An intermediate CA may itself be the trust anchor.
		if _, err := VerifyClusterCertificate(csr, read(t, "cluster2.crt"), read(t, "issuing.crt"), now); err != nil {
			t.Fatal(err)
		}
	})

	// SignCSR's result satisfies openssl too.
	t.Run("openssl verifies SignCSR", func(t *testing.T) {
		caCert, err := DecodeCertificatePEM(anchor, "anchor")
		if err != nil {
			t.Fatal(err)
		}
		csr, err := NewClusterCSR(mustKey(t), "cluster-ossl3")
		if err != nil {
			t.Fatal(err)
		}
		signed, err := SignCSR(caCert, caKey, csr, time.Now().AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		write(t, "cluster3.crt", signed)
		run(t, "verify", "-CAfile", "customerCA.crt", "cluster3.crt")
	})
}
