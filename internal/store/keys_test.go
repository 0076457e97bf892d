package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateNodeKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := CreateNodeKey(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != keyLen {
		t.Fatalf("node key mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), keyLen)
	}
	before, _ := os.ReadFile(path)
	if err := CreateNodeKey(path); err == nil {
		t.Fatal("CreateNodeKey overwrote an existing key")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("failed CreateNodeKey changed the existing key")
	}
}

func TestNodeKeyFileRefused(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantBad bool // ErrBadNodeKey, rather than another error
	}{
		{"mode 0644", func(t *testing.T, p string) { chmod(t, p, 0o644) }, true},
		{"mode 0640", func(t *testing.T, p string) { chmod(t, p, 0o640) }, true},
		{"mode 0604", func(t *testing.T, p string) { chmod(t, p, 0o604) }, true},
		{"short", func(t *testing.T, p string) { writeFile(t, p, make([]byte, keyLen-1)) }, true},
		{"long", func(t *testing.T, p string) { writeFile(t, p, make([]byte, keyLen+1)) }, true},
		{"empty", func(t *testing.T, p string) { writeFile(t, p, nil) }, true},
		{"directory", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"missing", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNode(t, 1)
			tc.setup(t, n.nodeKey)
			s, err := Open(t.Context(), n.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted the node key file")
			}
			if errors.Is(err, ErrBadNodeKey) != tc.wantBad {
				t.Fatalf("err = %v, ErrBadNodeKey = %v, want %v", err, !tc.wantBad, tc.wantBad)
			}
			if !strings.Contains(err.Error(), n.nodeKey) {
				t.Fatalf("error %q does not name %s", err, n.nodeKey)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWrongNodeKey(t *testing.T) {
	n := newTestNode(t, 1)
	s := n.open(t)
	if err := s.SetMaskingKey(t.Context(), newMK(t)); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, KindObject, "a", []byte("a"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	if err := CreateNodeKey(other); err != nil {
		t.Fatal(err)
	}
	cfg := n.cfg
	cfg.NodeKeyPath = other
	s2, err := Open(t.Context(), cfg)
	if err == nil {
		s2.Close()
		t.Fatal("Open succeeded with another node key")
	}
	if !errors.Is(err, ErrWrongNodeKey) || !strings.Contains(err.Error(), other) {
		t.Fatalf("err = %v, want ErrWrongNodeKey naming %s", err, other)
	}
	// The right key still works: the failed open changed nothing.
	mustGet(t, n.open(t), KindObject, "a", []byte("a"))
}

func TestMaskingKey(t *testing.T) {
	ctx := t.Context()
	mk := newMK(t)
	n := newTestNode(t, 1)
	s := n.open(t)

	if s.HasMaskingKey() {
		t.Fatal("new store has a masking key")
	}
	t.Run("operations need it", func(t *testing.T) {
		if _, err := s.Put(ctx, KindObject, "a", nil); !errors.Is(err, ErrNoMaskingKey) {
			t.Errorf("Put err = %v", err)
		}
		if _, err := s.Get(ctx, KindObject, "a"); !errors.Is(err, ErrNoMaskingKey) {
			t.Errorf("Get err = %v", err)
		}
		if _, err := s.Apply(ctx, sealWith(t, mk, KindObject, "a", Version{Wall: 1}, false, nil)); !errors.Is(err, ErrNoMaskingKey) {
			t.Errorf("Apply err = %v", err)
		}
		if _, err := s.MaskingKeyCheck(); !errors.Is(err, ErrNoMaskingKey) {
			t.Errorf("MaskingKeyCheck err = %v", err)
		}
	})
	t.Run("wrong length", func(t *testing.T) {
		for _, l := range []int{0, 16, 31, 33} {
			if err := s.SetMaskingKey(ctx, make([]byte, l)); err == nil {
				t.Errorf("accepted a %d-byte masking key", l)
			}
		}
	})
	if err := s.SetMaskingKey(ctx, mk); err != nil {
		t.Fatal(err)
	}
	check, err := s.MaskingKeyCheck()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("same key again is fine", func(t *testing.T) {
		if err := s.SetMaskingKey(ctx, bytes.Clone(mk)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("different key refused", func(t *testing.T) {
		if err := s.SetMaskingKey(ctx, newMK(t)); !errors.Is(err, ErrMaskingKeyMismatch) {
			t.Fatalf("err = %v, want ErrMaskingKeyMismatch", err)
		}
	})
	t.Run("check identifies the cluster", func(t *testing.T) {
		peer, _ := newTestStore(t, 2, bytes.Clone(mk))
		stranger, _ := newTestStore(t, 3, newMK(t))
		pc, _ := peer.MaskingKeyCheck()
		sc, _ := stranger.MaskingKeyCheck()
		if !bytes.Equal(check, pc) {
			t.Error("same MK, different checks")
		}
		if bytes.Equal(check, sc) {
			t.Error("different MKs, same check")
		}
		if len(check) != 32 || bytes.Contains(check, mk[:8]) {
			t.Errorf("check %x looks wrong", check)
		}
	})
	t.Run("persisted sealed, not in clear", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(n.cfg.Path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, mk) {
			t.Fatal("masking key found in clear in the database file")
		}
		nk, _ := os.ReadFile(n.nodeKey)
		if bytes.Contains(raw, nk) {
			t.Fatal("node key found in the database file")
		}
		s2 := n.open(t)
		c2, err := s2.MaskingKeyCheck()
		if err != nil || !bytes.Equal(c2, check) {
			t.Fatalf("after reopen check = %x, %v; want %x", c2, err, check)
		}
		if err := s2.SetMaskingKey(ctx, newMK(t)); !errors.Is(err, ErrMaskingKeyMismatch) {
			t.Fatalf("after reopen, different MK err = %v", err)
		}
	})
}

func TestPayloadNotInClear(t *testing.T) {
	s, n := newTestStore(t, 1, newMK(t))
	secret := []byte("THIS-IS-A-SECRET-KEY-VALUE-0123456789")
	mustPut(t, s, KindObject, "visible-id", secret)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(n.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret[:16]) {
		t.Fatal("payload found in clear in the database file")
	}
	if !bytes.Contains(raw, []byte("visible-id")) {
		t.Fatal("record id not found: metadata should stay readable")
	}
}

func TestConfig(t *testing.T) {
	good := Config{Path: "db", NodeKeyPath: "key", Node: 1}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"good", func(*Config) {}, true},
		{"no path", func(c *Config) { c.Path = "" }, false},
		{"no node key", func(c *Config) { c.NodeKeyPath = "" }, false},
		{"node zero", func(c *Config) { c.Node = 0 }, false},
		{"negative timeout", func(c *Config) { c.LockTimeout = -1 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestNodeIDMismatch(t *testing.T) {
	n := newTestNode(t, 1)
	if err := n.open(t).Close(); err != nil {
		t.Fatal(err)
	}
	cfg := n.cfg
	cfg.Node = 2
	s, err := Open(t.Context(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("opened node 1's store as node 2")
	}
	if !strings.Contains(err.Error(), "node id") {
		t.Fatalf("err = %v, want it to mention the node id", err)
	}
}
