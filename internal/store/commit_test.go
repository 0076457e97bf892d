package store

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCommitterRetriesGroup drives one group by hand: a failing or panicking
// member is dropped with its own error, its writes are rolled back, and the
// others run again and commit.
func TestCommitterRetriesGroup(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &committer{db: db} // no run goroutine: commit is called directly
	runs := map[string]int{}
	member := func(key string, fail error, panics bool) *commitReq {
		return &commitReq{done: make(chan error, 1), fn: func(tx *bolt.Tx) error {
			runs[key]++
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(key), []byte{byte(runs[key])}); err != nil {
				return err
			}
			if panics {
				panic("boom")
			}
			return fail
		}}
	}
	errBad := errors.New("bad member")
	group := []*commitReq{
		member("a", nil, false),
		member("bad", errBad, false),
		member("b", nil, false),
		member("panics", nil, true),
		member("c", nil, false),
	}
	c.commit(slices.Clone(group))

	want := map[string]struct {
		runs int
		err  error // nil: committed
	}{
		"a":      {3, nil}, // rerun after each failure
		"bad":    {1, errBad},
		"b":      {2, nil},
		"panics": {1, ErrCorruptDatabase},
		"c":      {1, nil},
	}
	keys := []string{"a", "bad", "b", "panics", "c"}
	for i, key := range keys {
		if err := <-group[i].done; !errors.Is(err, want[key].err) || (err == nil) != (want[key].err == nil) {
			t.Errorf("%s: err = %v, want %v", key, err, want[key].err)
		}
		if runs[key] != want[key].runs {
			t.Errorf("%s ran %d times, want %d", key, runs[key], want[key].runs)
		}
	}
	db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for _, key := range keys {
			got := b.Get([]byte(key))
			if committed := want[key].err == nil; committed != (got != nil) {
				t.Errorf("%s stored = %v, want %v", key, got != nil, committed)
			}
			if got != nil && int(got[0]) != runs[key] {
				t.Errorf("%s: stored value from run %d, want the last run %d", key, got[0], runs[key])
			}
		}
		return nil
	})
}

func TestCanceledContext(t *testing.T) {
	s, _ := newTestStore(t, 1, newMK(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, KindObject, "a", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put err = %v, want context.Canceled", err)
	}
	if _, err := s.Get(t.Context(), KindObject, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Put with a canceled context stored something: %v", err)
	}
	if err := s.Scan(ctx, KindObject, func(Record) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan err = %v, want context.Canceled", err)
	}
}

// TestImports enforces the package comment: no network, no internal/hsm.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net" || strings.HasPrefix(dep, "net/") || strings.Contains(dep, "/internal/hsm") {
			t.Errorf("store depends on %s", dep)
		}
	}
}

// TestCanceledWhileQueued: a write whose context ends after it was queued
// still reports what happened to it. Before, Put returned "outcome unknown"
// and the write committed anyway, so a caller that took the error for "not
// stored" (the HSM's device) fell behind its own store.
func TestCanceledWhileQueued(t *testing.T) {
	s, _ := newTestStore(t, 1, newMK(t))
	// Hold the committer in a transaction until the Put is queued behind it.
	release := make(chan struct{})
	blocked := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.commits.do(t.Context(), func(*bolt.Tx) error {
			select {
			case <-blocked:
			default:
				close(blocked)
			}
			<-release
			return nil
		})
	}()
	<-blocked
	ctx, cancel := context.WithCancel(t.Context())
	put := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, KindObject, "queued", []byte("value"))
		put <- err
	}()
	for {
		s.commits.mu.Lock()
		n := len(s.commits.queue)
		s.commits.mu.Unlock()
		if n > 0 {
			break
		}
		runtime.Gosched()
	}
	cancel()
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	err := <-put
	// A later write commits after the queued one: then look.
	mustPut(t, s, KindObject, "later", []byte("value"))
	_, getErr := s.Get(t.Context(), KindObject, "queued")
	switch {
	case err == nil && getErr != nil:
		t.Fatalf("Put succeeded, but the record is not there: %v", getErr)
	case err != nil && !errors.Is(getErr, ErrNotFound):
		t.Fatalf("Put failed (%v), but the record was stored (%v)", err, getErr)
	}
}
