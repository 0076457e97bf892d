package node

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-hsm/coffer/internal/audit"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestAuditKeyedAndAnchored: a node's audit log is keyed under its masking
// key and anchored in its store. VerifyAudit checks it offline; a log cut
// short, or rewritten with a recomputed unkeyed chain, fails VerifyAudit and
// stops the node from starting.
func TestAuditKeyedAndAnchored(t *testing.T) {
	pki := newTestPKI(t, "cluster-audit")
	cfg := config(t, pki, 1, MasterKeyCreate)
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	activate(t, hsmv1.NewHSMClient(dial(t, pki, n.Addr())))
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	vcfg := AuditVerifyConfig{DataDir: cfg.DataDir, NodeID: 1}
	res, anchored, err := VerifyAudit(t.Context(), vcfg)
	if err != nil || !anchored || res.Records < 3 || res.Unkeyed != 0 || res.Head.Seq != res.Records {
		t.Fatalf("VerifyAudit = %+v, anchored %v, %v; want every record keyed and the head anchored", res, anchored, err)
	}
	logPath := filepath.Join(cfg.DataDir, AuditFile)
	orig, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(orig, []byte(`"v":1,`)) {
		t.Fatalf("the log has unkeyed records:\n%s", orig)
	}
	lines := bytes.SplitAfter(orig, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty piece after the last newline
	// unkeyedChain is the log as an attacker without the key rewrites it:
	// the same events, the chain recomputed with plain SHA-256 in a log
	// the old format accepts.
	unkeyedChain := func() []byte {
		path := filepath.Join(t.TempDir(), "forged.log")
		lg, err := audit.Open(t.Context(), audit.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		rd := audit.NewReader(bytes.NewReader(orig))
		for {
			rec, err := rd.Next()
			if err != nil {
				break
			}
			if rec.Op == "activate" {
				rec.User = "mallory"
			}
			if err := lg.AppendSync(t.Context(), rec.Event); err != nil {
				t.Fatal(err)
			}
		}
		if err := lg.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := audit.Verify(bytes.NewReader(b), nil); err != nil {
			t.Fatalf("the forged log does not pass the unkeyed check: %v", err)
		}
		return b
	}()
	for _, tc := range []struct {
		name string
		log  []byte
		want error
	}{
		{"last record cut off", bytes.Join(lines[:len(lines)-1], nil), audit.ErrTruncated},
		{"rewritten with an unkeyed chain", unkeyedChain, audit.ErrAnchorMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(logPath, tc.log, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.WriteFile(logPath, orig, 0o600) })
			if _, _, err := VerifyAudit(t.Context(), vcfg); !errors.Is(err, tc.want) {
				t.Fatalf("VerifyAudit = %v, want %v", err, tc.want)
			}
			cfg2 := cfg
			cfg2.Listener, cfg2.MasterKey = listen(t), MasterKeyExisting
			if n, err := New(t.Context(), cfg2); !errors.Is(err, tc.want) {
				if err == nil {
					n.Close()
				}
				t.Fatalf("New = %v, want %v", err, tc.want)
			}
		})
	}
}
