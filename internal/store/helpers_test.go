package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
)

// testNode is one store's files: database and node key.
type testNode struct {
	dir     string
	cfg     Config
	nodeKey string
}

func newTestNode(t testing.TB, node uint32) testNode {
	t.Helper()
	dir := t.TempDir()
	n := testNode{dir: dir, nodeKey: filepath.Join(dir, "node.key")}
	if err := CreateNodeKey(n.nodeKey); err != nil {
		t.Fatal(err)
	}
	n.cfg = Config{Path: filepath.Join(dir, "store.db"), NodeKeyPath: n.nodeKey, Node: node}
	return n
}

// open opens the node's store and closes it at cleanup.
func (n testNode) open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), n.cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newMK(t testing.TB) []byte {
	t.Helper()
	mk := make([]byte, keyLen)
	if _, err := rand.Read(mk); err != nil {
		t.Fatal(err)
	}
	return mk
}

// newTestStore returns an open store with a masking key.
func newTestStore(t testing.TB, node uint32, mk []byte) (*Store, testNode) {
	t.Helper()
	n := newTestNode(t, node)
	s := n.open(t)
	if err := s.SetMaskingKey(context.Background(), mk); err != nil {
		t.Fatalf("SetMaskingKey: %v", err)
	}
	return s, n
}

func mustPut(t testing.TB, s *Store, kind Kind, id string, data []byte) Version {
	t.Helper()
	v, err := s.Put(context.Background(), kind, id, data)
	if err != nil {
		t.Fatalf("Put(%s, %q): %v", kind, id, err)
	}
	return v
}

func mustGet(t testing.TB, s *Store, kind Kind, id string, want []byte) Record {
	t.Helper()
	r, err := s.Get(context.Background(), kind, id)
	if err != nil {
		t.Fatalf("Get(%s, %q): %v", kind, id, err)
	}
	if !bytes.Equal(r.Data, want) {
		t.Fatalf("Get(%s, %q) data = %q, want %q", kind, id, r.Data, want)
	}
	if r.Kind != kind || r.ID != id || r.Tombstone {
		t.Fatalf("Get(%s, %q) = %+v", kind, id, r)
	}
	return r
}

func mustExport(t testing.TB, s *Store, kind Kind, id string) Sealed {
	t.Helper()
	r, err := s.Export(context.Background(), kind, id)
	if err != nil {
		t.Fatalf("Export(%s, %q): %v", kind, id, err)
	}
	return r
}

// sealWith builds a Sealed record directly, as a peer holding mk would.
func sealWith(t testing.TB, mk []byte, kind Kind, id string, v Version, tombstone bool, data []byte) Sealed {
	t.Helper()
	kr, err := newKeyring(mk)
	if err != nil {
		t.Fatal(err)
	}
	hdr := appendHeader(nil, kind, id, v, tombstone)
	return Sealed{Kind: kind, ID: id, Version: v, Tombstone: tombstone, Box: kr.seal(hdr, data)}
}
