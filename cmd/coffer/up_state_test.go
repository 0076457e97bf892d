package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// An up.json from an earlier run is moved into the pending file when a
// run starts (so an up.json always belongs to a ready cluster), keeping
// its passwords; a pending file is newer than an up.json beside it.
func TestUpStateBeforeReady(t *testing.T) {
	for _, c := range []struct {
		name            string
		up, pending     string
		wantPW          string
		wantPendingMode os.FileMode
	}{
		{"up.json of an earlier run", `{"crypto_user":{"username":"u","password":"from-up"}}`, "", "from-up", 0o600},
		{"an interrupted run's pending file wins", `{"crypto_user":{"username":"u","password":"from-up"}}`,
			`{"crypto_user":{"username":"u","password":"from-pending"}}`, "from-pending", 0o600},
		{"pending file only", "", `{"crypto_user":{"username":"u","password":"from-pending"}}`, "from-pending", 0o600},
		{"a first run", "", "", "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			upPath, pendingPath := filepath.Join(dir, "up.json"), filepath.Join(dir, upPendingName)
			for path, content := range map[string]string{upPath: c.up, pendingPath: c.pending} {
				if content != "" {
					if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			prev, err := readUpState(upPath, pendingPath, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if prev.CryptoUser.Password != c.wantPW {
				t.Fatalf("password %q, want %q", prev.CryptoUser.Password, c.wantPW)
			}
			if _, err := os.Stat(upPath); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("up.json is still there before the cluster is ready (%v)", err)
			}
			fi, err := os.Stat(pendingPath)
			switch {
			case c.wantPendingMode == 0 && !errors.Is(err, os.ErrNotExist):
				t.Fatalf("a pending file on a first run (%v)", err)
			case c.wantPendingMode != 0 && err != nil:
				t.Fatal(err)
			case c.wantPendingMode != 0 && fi.Mode().Perm() != c.wantPendingMode:
				t.Fatalf("pending file mode %v, want %v", fi.Mode().Perm(), c.wantPendingMode)
			}
			// What the next run reads is the same.
			again, err := readUpState(upPath, pendingPath, io.Discard)
			if err != nil || !reflect.DeepEqual(again, prev) {
				t.Fatalf("read again: %+v %v, want %+v", again, err, prev)
			}
		})
	}
}

// One coffer up holds a data directory: a second lock is refused naming
// the holder's pid, and the directory is free again once it is released.
func TestUpLock(t *testing.T) {
	dir := t.TempDir()
	if _, running, err := upRunning(dir); running || err != nil {
		t.Fatalf("a fresh directory: running %v, %v", running, err)
	}
	l, err := lockUp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pid, running, err := upRunning(dir); !running || err != nil || pid != os.Getpid() {
		t.Fatalf("upRunning: %d %v %v", pid, running, err)
	}
	_, err = lockUp(dir)
	if !errors.Is(err, errUpRunning) || !strings.Contains(err.Error(), "coffer down --data-dir") {
		t.Fatalf("second lock: %v", err)
	}
	l.release()
	if exists(filepath.Join(dir, upPidName)) {
		t.Fatal("up.pid is left after release")
	}
	if _, running, err := upRunning(dir); running || err != nil {
		t.Fatalf("after release: running %v, %v", running, err)
	}
	l, err = lockUp(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l.release()
}

// coffer down signals only a coffer up: a pid file naming another process
// that holds the lock (here this test binary) is refused, not signalled.
func TestDownSignalsOnlyCofferUp(t *testing.T) {
	dir := t.TempDir()
	coffer := cofferBinary(t, dir)
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := lockUp(data) // this process: "coffer.test -test...", not "coffer up"
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, coffer, "down", "--data-dir", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a coffer up") {
		t.Fatalf("coffer down with a pid that is not coffer up's: %v\n%s", err, out)
	}
}

// --wait-timeout belongs to --detach, and is positive.
func TestUpWaitTimeoutFlag(t *testing.T) {
	for _, args := range [][]string{
		{"up", "--data-dir", t.TempDir(), "--wait-timeout", "1m"},
		{"up", "--detach", "--data-dir", t.TempDir(), "--wait-timeout", "0s"},
	} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--wait-timeout") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
