package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var testEpoch = time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

func fixedNow() time.Time { return testEpoch }

// testEvent is the i-th (0-based) event of a test log; it becomes record i+1.
func testEvent(i int) Event {
	return Event{
		Time:    testEpoch.Add(time.Duration(i) * time.Millisecond),
		User:    fmt.Sprintf("user-%d", i+1),
		Role:    "crypto-user",
		Session: uint64(100 + i),
		Op:      "key.sign",
		Object:  uint64(1000 + i),
		Result:  "ok",
	}
}

// chainLines encodes n test events as the writer would, one line each.
func chainLines(t testing.TB, n int) [][]byte {
	t.Helper()
	var prev [32]byte
	var scratch []byte
	lines := make([][]byte, n)
	for i := range n {
		ev, _ := normalize(testEvent(i), fixedNow)
		rec := Record{Seq: uint64(i + 1), Event: ev, Prev: prev}
		rec.Hash, scratch = computeHash(scratch, &rec)
		lines[i] = appendLine(nil, &rec)
		prev = rec.Hash
	}
	return lines
}

func anchorOf(t testing.TB, line []byte) Anchor {
	t.Helper()
	rec, _, err := parseLine(bytes.TrimSuffix(line, []byte("\n")), nil)
	if err != nil {
		t.Fatalf("parseLine: %v", err)
	}
	return rec.Anchor()
}

func join(lines ...[]byte) []byte { return bytes.Join(lines, nil) }

// logBuffer is a concurrency-safe sink for a test slog.Logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// openTest opens a Log and closes it at cleanup unless the test did.
func openTest(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func verifyFile(t *testing.T, path string, want *Anchor) (uint64, Anchor) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, head, err := Verify(f, want)
	if err != nil {
		t.Fatalf("Verify %s: %v", path, err)
	}
	return n, head
}

func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []Record
	r := NewReader(f)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		recs = append(recs, rec)
	}
}

func tempLog(t *testing.T) string { return filepath.Join(t.TempDir(), "audit.log") }

// hookFile wraps the real file to observe and break writes and fsyncs.
type hookFile struct {
	logFile
	mu       sync.Mutex
	written  int64 // bytes written so far
	synced   int64 // bytes written before the last successful Sync
	writeErr error
	syncErr  error
	syncs    chan int64 // receives synced after each Sync, if room
}

func (h *hookFile) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.writeErr != nil {
		return 0, h.writeErr
	}
	n, err := h.logFile.Write(p)
	h.written += int64(n)
	return n, err
}

func (h *hookFile) Sync() error {
	h.mu.Lock()
	if h.syncErr != nil {
		h.mu.Unlock()
		return h.syncErr
	}
	err := h.logFile.Sync()
	if err == nil {
		h.synced = h.written
	}
	synced := h.synced
	h.mu.Unlock()
	select {
	case h.syncs <- synced:
	default:
	}
	return err
}

func (h *hookFile) state() (written, synced int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.written, h.synced
}

func (h *hookFile) set(writeErr, syncErr error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writeErr, h.syncErr = writeErr, syncErr
}

// openHooked opens a Log whose file is a hookFile.
func openHooked(t *testing.T, cfg Config) (*Log, *hookFile) {
	t.Helper()
	h := &hookFile{syncs: make(chan int64, 64)}
	l, err := open(t.Context(), cfg, func(path string) (logFile, error) {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		h.logFile = f
		return h, nil
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, h
}
