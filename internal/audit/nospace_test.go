//go:build linux

package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
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

// TestNoSpaceRecovers: on a full disk AppendSync fails with ENOSPC (under
// ErrFailed) and Err reports it; events keep their place in memory; once
// space returns the next AppendSync writes everything, Err clears, and the
// file verifies with the log's key and the last anchor handed to
// OnDurable, every event present once, in order, without a gap.
func TestNoSpaceRecovers(t *testing.T) {
	dir := tmpfs(t, 1<<20)
	path := filepath.Join(dir, "audit.log")
	key := bytes.Repeat([]byte{7}, KeySize)
	var (
		mu     sync.Mutex
		anchor Anchor
	)
	cfg := Config{
		Path: path, Key: key, Now: fixedNow, FlushInterval: time.Hour,
		OnDurable: func(a Anchor) error { mu.Lock(); anchor = a; mu.Unlock(); return nil },
	}
	l := openTest(t, cfg)
	ctx := t.Context()
	var ops []string
	appendSync := func() error {
		op := fmt.Sprintf("user.change-%d", len(ops))
		ops = append(ops, op)
		return l.AppendSync(ctx, Event{Op: op, Result: "ok"})
	}
	appendAsync := func() {
		op := fmt.Sprintf("key.sign-%d", len(ops))
		ops = append(ops, op)
		l.Append(Event{Op: op, Result: "ok"})
	}
	for range 3 {
		if err := appendSync(); err != nil {
			t.Fatalf("AppendSync with space: %v", err)
		}
	}

	fill(t, dir)
	// The file's last page may still take a few lines.
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		appendAsync()
		err = appendSync()
	}
	if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("AppendSync on a full disk = %v, want ErrFailed and ENOSPC", err)
	}
	if err := l.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Err() on a full disk = %v, want ENOSPC", err)
	}
	appendAsync() // key use while the disk is full: kept, not dropped
	if err := appendSync(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("second AppendSync on a full disk = %v, want ENOSPC", err)
	}

	if err := os.Remove(filepath.Join(dir, "ballast")); err != nil {
		t.Fatal(err)
	}
	appendAsync()
	if err := appendSync(); err != nil {
		t.Fatalf("AppendSync once space returned: %v", err)
	}
	if err := l.Err(); err != nil {
		t.Errorf("Err() once space returned = %v, want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	mu.Lock()
	kept := anchor
	mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := VerifyKeyed(f, key, &kept)
	if err != nil {
		t.Fatalf("VerifyKeyed: %v", err)
	}
	if res.Records != uint64(len(ops)) || res.Head != kept {
		t.Errorf("verified %d records, head %d; want %d, the anchor %d", res.Records, res.Head.Seq, len(ops), kept.Seq)
	}
	for i, rec := range readRecords(t, path) {
		if rec.Op != ops[i] {
			t.Fatalf("record %d is %q, want %q", rec.Seq, rec.Op, ops[i])
		}
	}
	l2, err := Open(ctx, Config{Path: path, Key: key, Anchor: &kept})
	if err != nil {
		t.Fatalf("reopen against the anchor: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
