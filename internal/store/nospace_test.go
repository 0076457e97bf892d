//go:build linux

package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// tmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts it
// at cleanup. It skips the test where mounting is not permitted (not root).
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func resizeTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v: %s", dir, err, out)
	}
}

// fill writes a ballast file in dir until the filesystem is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestNoSpace: on a full filesystem a write fails with ErrNoSpace (and
// ENOSPC), is not acknowledged and harms nothing stored before; the store
// stays open and writes work again once space returns; a store reopened on
// the full filesystem opens (it is not corrupt), and a new store there fails
// with ErrNoSpace rather than ErrCorruptDatabase.
func TestNoSpace(t *testing.T) {
	ctx := t.Context()
	const size = 1 << 20
	dir := tmpfs(t, size)
	n := testNode{dir: dir, nodeKey: filepath.Join(dir, "node.key")}
	if err := CreateNodeKey(n.nodeKey); err != nil {
		t.Fatal(err)
	}
	n.cfg = Config{Path: filepath.Join(dir, "store.db"), NodeKeyPath: n.nodeKey, Node: 1}
	s, err := Open(ctx, n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	mk := newMK(t)
	if err := s.SetMaskingKey(ctx, mk); err != nil {
		t.Fatal(err)
	}
	stored := map[string][]byte{}
	for i := range 20 {
		id := fmt.Sprint("before-", i)
		stored[id] = bytes.Repeat([]byte{byte(i)}, 1000)
		mustPut(t, s, KindObject, id, stored[id])
	}
	fill(t, dir)

	// Writes until one fails: free pages inside the file may take a few.
	var putErr error
	for i := 0; i < 10000 && putErr == nil; i++ {
		id := fmt.Sprint("full-", i)
		data := bytes.Repeat([]byte{0xa5}, 1000)
		if _, putErr = s.Put(ctx, KindObject, id, data); putErr == nil {
			stored[id] = data
		}
	}
	if !errors.Is(putErr, ErrNoSpace) || !errors.Is(putErr, syscall.ENOSPC) || errors.Is(putErr, ErrCorruptDatabase) {
		t.Fatalf("put on a full filesystem: %v, want ErrNoSpace wrapping ENOSPC", putErr)
	}
	check := func(s *Store) {
		t.Helper()
		for id, data := range stored {
			mustGet(t, s, KindObject, id, data)
		}
	}
	check(s)

	// A store reopened while the filesystem is still full opens.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, n.cfg); err != nil {
		t.Fatalf("reopen on a full filesystem: %v", err)
	}
	check(s)

	// A new store on the full filesystem is refused for space, not as corrupt.
	other := n.cfg
	other.Path = filepath.Join(dir, "new.db")
	if s2, err := Open(ctx, other); err == nil {
		s2.Close()
		t.Log("a new store opened on the full filesystem (bbolt's first pages fitted)")
	} else if !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrCorruptDatabase) {
		t.Errorf("new store on a full filesystem: %v, want ErrNoSpace and not ErrCorruptDatabase", err)
	}

	// Space returns: writes succeed without a restart.
	resizeTmpfs(t, dir, 4*size)
	mustPut(t, s, KindObject, "after", []byte("space is back"))
	stored["after"] = []byte("space is back")
	check(s)
}
