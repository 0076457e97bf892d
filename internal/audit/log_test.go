package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendThenVerify(t *testing.T) {
	path := tempLog(t)
	l := openTest(t, Config{Path: path, Now: fixedNow})
	const n = 50
	for i := range n {
		l.Append(testEvent(i))
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The writer must produce exactly what an independent encoding of the
	// same events gives.
	if want := join(chainLines(t, n)...); !bytes.Equal(got, want) {
		t.Fatalf("file differs from the expected encoding:\n got %.300s\nwant %.300s", got, want)
	}
	gotN, head := verifyFile(t, path, nil)
	seq, hash := l.Head()
	if gotN != n || head != (Anchor{Seq: seq, Hash: hash}) {
		t.Errorf("verified %d records to %d; Head() = %d", gotN, head.Seq, seq)
	}
}

func TestReopenResumes(t *testing.T) {
	path := tempLog(t)
	var anchors []Anchor
	for round := range 3 {
		l, err := Open(t.Context(), Config{Path: path})
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		seq, hash := l.Head()
		if want := uint64(round * 4); seq != want {
			t.Errorf("round %d: reopened at seq %d, want %d", round, seq, want)
		}
		if round > 0 && hash != anchors[len(anchors)-1].Hash {
			t.Errorf("round %d: reopened head hash differs from the last close", round)
		}
		for i := range 4 {
			l.Append(testEvent(round*4 + i))
		}
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		seq, hash = l.Head()
		anchors = append(anchors, Anchor{Seq: seq, Hash: hash})
	}
	n, head := verifyFile(t, path, &anchors[0])
	if n != 12 || head != anchors[2] {
		t.Errorf("verified %d records to %d, want 12 to the last head", n, head.Seq)
	}
	recs := readRecords(t, path)
	for i, r := range recs {
		if r.User != testEvent(i).User {
			t.Errorf("record %d user = %q, want %q", r.Seq, r.User, testEvent(i).User)
		}
	}
}

func TestOpenTruncatesTornTail(t *testing.T) {
	const n = 5
	lines := chainLines(t, n+1)
	good := join(lines[:n]...)
	next := lines[n]
	tests := []struct {
		name  string
		good  []byte
		extra []byte
	}{
		{"half a line", good, next[:len(next)/2]},
		{"line without its newline", good, next[:len(next)-1]},
		{"one byte", good, next[:1]},
		{"garbage without newline", good, []byte("\x00\x00\x00")},
		{"only a torn line", nil, lines[0][:10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempLog(t)
			if err := os.WriteFile(path, join(tt.good, tt.extra), 0o600); err != nil {
				t.Fatal(err)
			}
			logger, logs := newLogger()
			l := openTest(t, Config{Path: path, Logger: logger})
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "incomplete final line") {
				t.Errorf("no warning logged; log: %s", logs)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.good) {
				t.Errorf("after Open the file is %d bytes, want the %d complete lines", len(got), len(tt.good))
			}
			seq, _ := l.Head()
			if want := uint64(bytes.Count(tt.good, []byte("\n"))); seq != want {
				t.Errorf("Head = %d, want %d", seq, want)
			}
			if err := l.AppendSync(t.Context(), Event{Op: "after.crash", Result: "ok"}); err != nil {
				t.Fatalf("AppendSync: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n, _ := verifyFile(t, path, nil); n != seq+1 {
				t.Errorf("verified %d records, want %d", n, seq+1)
			}
		})
	}
}

func TestOpenRefusesDamage(t *testing.T) {
	const n = 5
	lines := chainLines(t, n)
	good := join(lines...)
	editedLast := join(join(lines[:n-1]...), bytes.Replace(lines[n-1], []byte("user-5"), []byte("user-6"), 1))
	tests := []struct {
		name    string
		content []byte
		wantErr error
		wantSeq uint64
	}{
		{"garbage final line", join(good, []byte("garbage\n")), ErrMalformed, n + 1},
		{"complete but edited final line", editedLast, ErrHash, n},
		{"blank final line", join(good, []byte("\n")), ErrMalformed, n + 1},
		{"deleted middle line", join(join(lines[:2]...), join(lines[3:]...)), ErrSequence, 3},
		{"damage before a torn tail", join(join(lines[:2]...), join(lines[3:]...), []byte("{")), ErrSequence, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempLog(t)
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(t.Context(), Config{Path: path})
			if err == nil {
				_ = l.Close()
				t.Fatal("Open accepted a damaged log")
			}
			ve, ok := errors.AsType[*VerifyError](err)
			if !ok || !errors.Is(err, tt.wantErr) || ve.Seq != tt.wantSeq {
				t.Errorf("Open error = %v, want a VerifyError %v at seq %d", err, tt.wantErr, tt.wantSeq)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !bytes.Equal(got, tt.content) {
				t.Error("Open modified a log it refused")
			}
		})
	}
}

func TestOpenAnchor(t *testing.T) {
	const n = 6
	lines := chainLines(t, n)
	head := anchorOf(t, lines[n-1])
	tests := []struct {
		name    string
		anchor  Anchor
		wantErr error
	}{
		{"head", head, nil},
		{"middle", anchorOf(t, lines[2]), nil},
		{"beyond the tail", Anchor{Seq: n + 3, Hash: head.Hash}, ErrTruncated},
		{"wrong hash", Anchor{Seq: 3, Hash: head.Hash}, ErrAnchorMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempLog(t)
			if err := os.WriteFile(path, join(lines...), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(t.Context(), Config{Path: path, Anchor: &tt.anchor})
			if err == nil {
				defer l.Close()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Open error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestConcurrentAppend(t *testing.T) {
	path := tempLog(t)
	l := openTest(t, Config{Path: path, QueueSize: 64})
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Append(Event{User: fmt.Sprintf("g%d", g), Session: uint64(g), Op: "key.sign", Object: uint64(i), Result: "ok"})
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	recs := readRecords(t, path)
	if len(recs) != goroutines*each {
		t.Fatalf("%d records, want %d", len(recs), goroutines*each)
	}
	next := make([]uint64, goroutines) // next Object expected from each goroutine
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		g := r.Session
		if r.Object != next[g] {
			t.Fatalf("goroutine %d: record %d has object %d, want %d (lost or reordered)", g, r.Seq, r.Object, next[g])
		}
		next[g]++
	}
}

func TestAppendSyncIsDurable(t *testing.T) {
	path := tempLog(t)
	// A flush interval far longer than the test, so only AppendSync fsyncs.
	l, h := openHooked(t, Config{Path: path, FlushInterval: time.Hour})
	for i := range 3 {
		l.Append(testEvent(i))
	}
	ev := Event{User: "admin1", Role: "admin", Op: "user.create", Target: "bob", Result: "ok"}
	if err := l.AppendSync(t.Context(), ev); err != nil {
		t.Fatalf("AppendSync: %v", err)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	written, synced := h.state()
	if synced != int64(len(content)) || written != synced {
		t.Errorf("after AppendSync: %d bytes written, %d fsync'd, file %d; want all fsync'd", written, synced, len(content))
	}
	n, head, err := Verify(bytes.NewReader(content), nil)
	if err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4 records", n, err)
	}
	recs := readRecords(t, path)
	last := recs[len(recs)-1]
	if last.Op != ev.Op || last.Target != ev.Target || last.User != ev.User {
		t.Errorf("last record = %+v, want the synced event", last.Event)
	}
	if seq, hash := l.Head(); seq != 4 || hash != head.Hash {
		t.Errorf("Head = %d, want 4 and the file's last hash", seq)
	}
}

func TestAppendIsFlushedPeriodically(t *testing.T) {
	path := tempLog(t)
	l, h := openHooked(t, Config{Path: path, FlushInterval: time.Millisecond})
	l.Append(testEvent(0))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case synced := <-h.syncs:
			if written, _ := h.state(); synced > 0 && synced == written {
				return
			}
		case <-deadline:
			t.Fatal("an appended record was not fsync'd without AppendSync or Close")
		}
	}
}

func TestAfterClose(t *testing.T) {
	path := tempLog(t)
	logger, logs := newLogger()
	l, err := Open(t.Context(), Config{Path: path, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(testEvent(0))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l.Append(Event{Op: "late.append", Result: "ok"}) // must not panic
	if !strings.Contains(logs.String(), "late.append") || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("Append after Close was not logged as an error; log: %s", logs)
	}
	if err := l.AppendSync(t.Context(), Event{Op: "late.sync"}); !errors.Is(err, ErrClosed) {
		t.Errorf("AppendSync after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if n, _ := verifyFile(t, path, nil); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

func TestCloseRacesAppend(t *testing.T) {
	path := tempLog(t)
	logger, _ := newLogger()
	l, err := Open(t.Context(), Config{Path: path, Logger: logger, QueueSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	synced := 0
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if g%2 == 0 {
					l.Append(Event{Op: "async", Session: uint64(g), Object: uint64(i)})
				} else if l.AppendSync(t.Context(), Event{Op: "sync", Session: uint64(g), Object: uint64(i)}) == nil {
					mu.Lock()
					synced++
					mu.Unlock()
				}
			}
		})
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	recs := readRecords(t, path)
	got := 0
	for _, r := range recs {
		if r.Op == "sync" {
			got++
		}
	}
	if got < synced {
		t.Errorf("%d acknowledged AppendSync records, only %d in the log", synced, got)
	}
}

func TestAppendSyncContext(t *testing.T) {
	l := openTest(t, Config{Path: tempLog(t)})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.AppendSync(ctx, Event{Op: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendSync with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestWriterFailure: a failed write or fsync makes AppendSync and Err
// report ErrFailed, keeps Head at the last durable record, and keeps the
// records in memory; while the disk still fails a retry fails too; once it
// recovers the next AppendSync writes them all, once each (the file is cut
// back to its last durable record first), and the log writes again.
func TestWriterFailure(t *testing.T) {
	tests := []struct {
		name              string
		writeErr, syncErr error
	}{
		{"write fails", errors.New("EIO on write"), nil},
		{"fsync fails", nil, errors.New("EIO on fsync")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempLog(t)
			l, h := openHooked(t, Config{Path: path, Now: fixedNow, FlushInterval: time.Hour})
			if err := l.AppendSync(t.Context(), testEvent(0)); err != nil {
				t.Fatalf("first AppendSync: %v", err)
			}
			h.set(tt.writeErr, tt.syncErr)
			err := l.AppendSync(t.Context(), testEvent(1))
			if !errors.Is(err, ErrFailed) {
				t.Fatalf("AppendSync on a failing disk = %v, want ErrFailed", err)
			}
			if !errors.Is(l.Err(), ErrFailed) {
				t.Errorf("Err() = %v, want ErrFailed", l.Err())
			}
			if seq, _ := l.Head(); seq != 1 {
				t.Errorf("Head = %d, want 1 (the last durable record)", seq)
			}
			l.Append(testEvent(2))
			if err := l.AppendSync(t.Context(), testEvent(3)); !errors.Is(err, ErrFailed) {
				t.Errorf("AppendSync while the disk still fails = %v, want ErrFailed", err)
			}
			h.set(nil, nil) // the disk recovers, and so must the log
			if err := l.AppendSync(t.Context(), testEvent(4)); err != nil {
				t.Fatalf("AppendSync after the disk recovered: %v", err)
			}
			if err := l.Err(); err != nil {
				t.Errorf("Err() after the disk recovered = %v, want nil", err)
			}
			if seq, _ := l.Head(); seq != 5 {
				t.Errorf("Head = %d, want 5", seq)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := join(chainLines(t, 5)...); !bytes.Equal(data, want) {
				t.Errorf("log after recovery:\n%s\nwant:\n%s", data, want)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	path := tempLog(t)
	openTest(t, Config{Path: path})
	l, err := Open(t.Context(), Config{Path: path})
	if err == nil {
		_ = l.Close()
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
}

func TestEventTime(t *testing.T) {
	path := tempLog(t)
	logger, logs := newLogger()
	l := openTest(t, Config{Path: path, Now: fixedNow, Logger: logger})
	other := time.Date(2020, 1, 1, 12, 0, 0, 5, time.FixedZone("X", -7*3600))
	l.Append(Event{Op: "zero time"})
	l.Append(Event{Op: "given time", Time: other})
	l.Append(Event{Op: "unstorable time", Time: time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	want := []time.Time{testEpoch, other, testEpoch}
	for i, r := range recs {
		if !r.Time.Equal(want[i]) {
			t.Errorf("%s: time = %v, want %v", r.Op, r.Time, want[i])
		}
	}
	if !strings.Contains(logs.String(), "not storable") {
		t.Errorf("replacing an unstorable time was not logged; log: %s", logs)
	}
}

func TestOpenContext(t *testing.T) {
	path := tempLog(t)
	if err := os.WriteFile(path, join(chainLines(t, 3)...), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l, err := Open(ctx, Config{Path: path})
	if err == nil {
		_ = l.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Path: "x"}, true},
		{"no path", Config{}, false},
		{"negative interval", Config{Path: "x", FlushInterval: -1}, false},
		{"negative queue", Config{Path: "x", QueueSize: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestWriterFailureBound: while the disk fails, events beyond
// maxPendingBytes of waiting records get no number and are logged as lost;
// once it recovers the log holds every numbered one, without a gap.
func TestWriterFailureBound(t *testing.T) {
	path := tempLog(t)
	logger, logs := newLogger()
	l, h := openHooked(t, Config{Path: path, Logger: logger, Now: fixedNow, FlushInterval: time.Hour})
	h.set(errors.New("ENOSPC on write"), nil)
	if err := l.AppendSync(t.Context(), testEvent(0)); !errors.Is(err, ErrFailed) {
		t.Fatalf("AppendSync on a failing disk = %v, want ErrFailed", err)
	}
	line := len(appendLine(nil, &Record{Seq: 1, Event: testEvent(0)}))
	n := 2*maxPendingBytes/line + 1
	for i := range n {
		l.Append(Event{Op: fmt.Sprintf("key.sign-%d", i), Result: "ok"})
	}
	err := l.AppendSync(t.Context(), testEvent(1))
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("AppendSync beyond the bound = %v, want ErrFailed", err)
	}
	h.set(nil, nil)
	if err := l.AppendSync(t.Context(), testEvent(2)); err != nil {
		t.Fatalf("AppendSync after the disk recovered: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	if len(recs) < 2 || len(recs) >= n {
		t.Fatalf("%d records after %d events with a bound of %d bytes", len(recs), n+3, maxPendingBytes)
	}
	if last := recs[len(recs)-1]; last.Op != testEvent(2).Op || last.Seq != uint64(len(recs)) {
		t.Errorf("last record %d %q, want %d %q", last.Seq, last.Op, len(recs), testEvent(2).Op)
	}
	if !strings.Contains(logs.String(), "audit: event not recorded") {
		t.Error("events beyond the bound were not logged as lost")
	}
}
