package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults for Config.
const (
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultQueueSize     = 4096
)

var (
	// ErrClosed is returned by AppendSync and Close after Close.
	ErrClosed = errors.New("audit: log closed")
	// ErrFailed wraps the write or fsync error that keeps the log from
	// making records durable now (e.g. ENOSPC); the log retries and clears
	// it once they are (see Log.Err).
	ErrFailed = errors.New("audit: log failed")
	// ErrLocked means another Log (in this or another process) has the file open.
	ErrLocked = errors.New("audit: log file in use")
)

// Config configures a Log.
type Config struct {
	// Path is the log file; it is created (mode 0600) if missing.
	Path string
	// Logger receives warnings (a truncated torn line) and errors (events
	// that could not be recorded). Nil discards.
	Logger *slog.Logger
	// FlushInterval bounds how long a record passed to Append stays in
	// memory or un-fsync'd before it is written and fsync'd. Zero means
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// QueueSize is how many events Append can queue before it blocks.
	// Zero means DefaultQueueSize.
	QueueSize int
	// Now is the clock that stamps events without a time. Nil means time.Now.
	Now func() time.Time
	// Anchor, if not nil, is a record the existing log must contain; Open
	// fails with ErrTruncated or ErrAnchorMismatch otherwise.
	Anchor *Anchor
	// Key, if set (KeySize bytes, see DeriveKey), keys the chain: Open
	// checks the MAC of every keyed record and new records are keyed. Without
	// it records are unkeyed until SetKey, and Open refuses a log that has
	// keyed records (ErrKeyRequired).
	Key []byte
	// OnDurable, if set, is called by the writer with the new head each time
	// records become durable (after their fsync), to keep it as an anchor
	// where the log's writer cannot rewrite it. An error is logged and the
	// call repeated at the next flush.
	OnDurable func(Anchor) error
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("audit: config: Path is required")
	case c.FlushInterval < 0:
		return fmt.Errorf("audit: config: FlushInterval %v is negative", c.FlushInterval)
	case c.QueueSize < 0:
		return fmt.Errorf("audit: config: QueueSize %d is negative", c.QueueSize)
	case c.Key != nil && len(c.Key) != KeySize:
		return fmt.Errorf("audit: config: Key of %d bytes, want %d", len(c.Key), KeySize)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	cfg Config
	f   logFile

	// mu guards closed. Append and AppendSync hold the read lock while they
	// send on reqs; Close takes the write lock, so once it has set closed no
	// sender is mid-send and closing reqs cannot panic one.
	mu     sync.RWMutex
	closed bool
	reqs   chan request

	done     chan struct{} // closed when the writer goroutine has exited
	closeErr error         // set by the writer before it closes done

	// state guards head (the last fsync'd record) and failed (nil while writing).
	state  sync.Mutex
	head   Anchor
	failed error

	w writer // owned by the writer goroutine
}

// Open opens the log at cfg.Path, creating it if needed. An existing log is
// verified in full (and checked against cfg.Anchor if set) and appending
// resumes at its tail; an incomplete final line left by a crash is
// truncated away with a warning, any other damage is a [*VerifyError]. ctx
// bounds Open only; the Log lives until Close.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	return open(ctx, cfg, openFile)
}

func open(ctx context.Context, cfg Config, openFn func(string) (logFile, error)) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	f, err := openFn(cfg.Path)
	if err != nil {
		return nil, err
	}
	cr := &ctxReader{ctx: ctx, r: f}
	res, tornAt, err := scan(cr, cfg.Key, cfg.Anchor, true)
	n, head := res.Records, res.Head
	if err != nil {
		return nil, errors.Join(fmt.Errorf("audit: open %s: %w", cfg.Path, err), f.Close())
	}
	size := cr.n // scan read to the end
	if tornAt >= 0 {
		size = tornAt
		cfg.Logger.Warn("audit: truncating incomplete final line left by a crash",
			"path", cfg.Path, "offset", tornAt, "records", n)
		if err := f.Truncate(tornAt); err != nil {
			return nil, errors.Join(fmt.Errorf("audit: open %s: truncate torn line: %w", cfg.Path, err), f.Close())
		}
	}
	if err := f.Sync(); err != nil {
		return nil, errors.Join(fmt.Errorf("audit: open %s: sync: %w", cfg.Path, err), f.Close())
	}
	l := &Log{
		cfg:  cfg,
		f:    f,
		reqs: make(chan request, cfg.QueueSize),
		done: make(chan struct{}),
		head: head,
		w:    writer{seq: head.Seq, prev: head.Hash, last: head, anchored: head, durable: size},
	}
	if cfg.Key != nil {
		if l.w.mac, err = newMAC(cfg.Key); err != nil {
			return nil, errors.Join(err, f.Close())
		}
	}
	go l.run()
	return l, nil
}

// SetKey keys the chain from the next record on (see Config.Key); records
// queued before it stay as they are. A log that has a key keeps it.
func (l *Log) SetKey(key []byte) error {
	mac, err := newMAC(key)
	if err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.reqs <- request{mac: mac}
	return nil
}

// Append records ev without waiting for the disk. It stamps ev.Time with
// the log's clock if it is zero and queues the event; it does not allocate.
// If the queue is full it blocks until the writer makes room rather than
// drop the record. While the log cannot write (Err is not nil) the record
// waits in memory, up to a bound, for a retry to write it; after Close, or
// beyond that bound, the event is logged at error level through
// Config.Logger instead (check Err to refuse unaudited operations).
func (l *Log) Append(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = l.cfg.Now()
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		l.lost(ev, ErrClosed)
		return
	}
	l.reqs <- request{ev: ev}
	l.mu.RUnlock()
}

// AppendSync records ev and returns once it and every record before it are
// written and fsync'd. It returns ErrClosed after Close and an error
// wrapping ErrFailed (and the cause, e.g. syscall.ENOSPC) if the log
// cannot write: it retries at once, and if that fails too the record stays
// in memory in its place in the chain, to be written by a later retry
// (unless the process stops first). If ctx ends first it returns
// ctx's error; if the event was already queued it may still be recorded.
func (l *Log) AppendSync(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	if ev.Time.IsZero() {
		ev.Time = l.cfg.Now()
	}
	done := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.reqs <- request{ev: ev, done: done}:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return fmt.Errorf("audit: append: %w", ctx.Err())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit: append: waiting for fsync (the record may still be written): %w", ctx.Err())
	}
}

// Head returns the last record known to be fsync'd: the anchor to keep
// elsewhere to detect truncation later. An empty log returns (0, zero).
func (l *Log) Head() (seq uint64, hash [32]byte) {
	l.state.Lock()
	defer l.state.Unlock()
	return l.head.Seq, l.head.Hash
}

// Err returns nil while the log is writing, or the error (wrapping
// ErrFailed) that keeps it from writing now; it is nil again once a retry
// has made every record durable.
func (l *Log) Err() error {
	l.state.Lock()
	defer l.state.Unlock()
	return l.failed
}

// Close writes and fsyncs everything queued, stops the writer goroutine,
// waits for it and closes the file. It returns the log's failure if the
// last try to write failed. Calling it again returns ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	close(l.reqs)
	l.mu.Unlock()
	<-l.done
	return l.closeErr
}

// lost logs an event that will not be in the log, so it is not lost
// silently.
func (l *Log) lost(ev Event, why error) {
	l.cfg.Logger.Error("audit: event not recorded",
		"err", why, "time", ev.Time, "user", ev.User, "role", ev.Role, "session", ev.Session,
		"op", ev.Op, "object", ev.Object, "target", ev.Target, "result", ev.Result)
}

// ctxReader stops a read when ctx ends and counts the bytes read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
