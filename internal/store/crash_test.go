package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes this test binary as a child that writes as fast
// as it can and prints each id only after Put has returned; the parent
// SIGKILLs it mid-stream, reopens the store and checks every acknowledged
// write survived. A SIGKILL loses what the process held, not what the kernel
// held: this checks the commit protocol (no ack before commit, a store that
// reopens cleanly after dying mid-transaction), not fsync against power loss.
const (
	crashEnvDB    = "COFFER_STORE_CRASH_DB"
	crashEnvKey   = "COFFER_STORE_CRASH_NODE_KEY"
	crashEnvMK    = "COFFER_STORE_CRASH_MK"
	crashEnvRound = "COFFER_STORE_CRASH_ROUND"

	crashRounds    = 5
	crashWriters   = 8
	crashAcks      = 2000             // kill after this many acknowledgements,
	crashDeadline  = 10 * time.Second // or after this long
	crashChildLife = 60 * time.Second // a child orphaned by its parent stops by itself
)

// crashPayload is what the child writes under id, so the parent can check it.
func crashPayload(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return bytes.Repeat(sum[:], 1+int(sum[0])%8)
}

// TestCrashChild is the child process of TestCrashRecovery; it does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	dbPath := os.Getenv(crashEnvDB)
	if dbPath == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	mk, err := hex.DecodeString(os.Getenv(crashEnvMK))
	if err != nil {
		t.Fatal(err)
	}
	round := os.Getenv(crashEnvRound)
	ctx, cancel := context.WithTimeout(context.Background(), crashChildLife)
	defer cancel()
	s, err := Open(ctx, Config{Path: dbPath, NodeKeyPath: os.Getenv(crashEnvKey), Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetMaskingKey(ctx, mk); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // one ack line per write(2) to stdout
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if _, err := s.Put(ctx, KindObject, id, crashPayload(id)); err != nil {
					if ctx.Err() == nil {
						t.Errorf("Put(%s): %v", id, err)
					}
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s\n", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashRecovery(t *testing.T) {
	n := newTestNode(t, 1)
	mk := newMK(t)
	var acked []string
	for round := range crashRounds {
		ids := runCrashChild(t, n, mk, round)
		if len(ids) == 0 {
			t.Fatalf("round %d: child acknowledged nothing", round)
		}
		acked = append(acked, ids...)

		s, err := Open(t.Context(), n.cfg)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for _, id := range acked {
			r, err := s.Get(t.Context(), KindObject, id)
			if err != nil {
				s.Close()
				t.Fatalf("round %d: acknowledged %s lost: %v", round, id, err)
			}
			if !bytes.Equal(r.Data, crashPayload(id)) {
				s.Close()
				t.Fatalf("round %d: %s holds wrong data", round, id)
			}
		}
		// Every stored record opens, acknowledged or not.
		stored := 0
		if err := s.Scan(t.Context(), KindObject, func(Record) error { stored++; return nil }); err != nil {
			s.Close()
			t.Fatalf("round %d: scan after crash: %v", round, err)
		}
		if stored < len(acked) {
			t.Errorf("round %d: %d records stored, %d acknowledged", round, stored, len(acked))
		}
		id := fmt.Sprintf("after-crash-%d", round)
		if _, err := s.Put(t.Context(), KindSetting, id, []byte(id)); err != nil {
			t.Errorf("round %d: Put after crash: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged, %d stored in all", round, len(ids), stored)
	}
}

// runCrashChild runs one child to its SIGKILL and returns the ids it
// acknowledged.
func runCrashChild(t *testing.T, n testNode, mk []byte, round int) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashEnvDB+"="+n.cfg.Path,
		crashEnvKey+"="+n.nodeKey,
		crashEnvMK+"="+hex.EncodeToString(mk),
		fmt.Sprintf("%s=%d", crashEnvRound, round),
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() { cmd.Process.Signal(syscall.SIGKILL) }
	deadline := time.AfterFunc(crashDeadline, kill)
	defer deadline.Stop()

	var ids []string
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // EOF once the child is dead; a partial last line is no ack
		}
		if id, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ack "); ok {
			ids = append(ids, id)
			if len(ids) == crashAcks {
				kill()
			}
		}
	}
	err = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: child did not die by SIGKILL (%v); stderr:\n%s", round, err, stderr.String())
	}
	return ids
}
