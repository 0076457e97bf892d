package audit

import (
	"errors"
	"fmt"
	"hash"
	"time"
)

// request is one queued event; done, if not nil, receives the outcome once
// the record is fsync'd (nil) or cannot be (the failure).
type request struct {
	ev   Event
	done chan<- error
	mac  hash.Hash // set: not an event, but SetKey's key
}

// writeBytes is how much encoded output the writer collects before it
// writes without being asked to. Below it, records wait in memory for the
// flush tick or an AppendSync, as they would in the queue: either way a
// process crash loses them, so batching costs no durability and saves a
// syscall per few records.
const writeBytes = 64 << 10

// maxPendingBytes bounds the records kept in memory that are not durable
// yet. While the log writes, reaching it forces an fsync; while it cannot
// (a full disk), events beyond it are not numbered but logged as lost.
const maxPendingBytes = 4 << 20

// retryInterval is how often the flush tick retries a log that cannot
// write; an AppendSync retries at once.
const retryInterval = time.Second

// writer is the state of the writer goroutine; only it touches it.
type writer struct {
	seq  uint64   // last sequence number assigned
	prev [32]byte // hash of record seq
	last Anchor   // last record encoded
	// pending holds the encoded lines after the last durable record, in
	// order; the first written of them are in the file (maybe not
	// fsync'd). durable is the file's size up to the last durable record.
	pending []byte
	written int
	durable int64
	scratch []byte
	waiters []chan<- error // AppendSync callers in pending
	dirty   bool           // bytes written (or the file cut) since the last fsync
	// failed is the error of the last write, fsync or truncate (a copy of
	// Log.failed), nil while the log writes. It clears once a retry makes
	// pending durable.
	failed    error
	nextRetry time.Time // when the tick retries a failed log next
	mac       hash.Hash // HMAC under the log key; nil while unkeyed
	// anchored is the last head OnDurable accepted.
	anchored Anchor
}

// run is the writer goroutine. It drains the queue into an in-memory batch
// and writes the batch when it reaches writeBytes; when an AppendSync waits,
// at every flush tick, and on Close (reqs closed) it writes and fsyncs.
// Close then closes the file.
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case req, ok := <-l.reqs:
			if !ok {
				l.closeErr = l.shutdown()
				return
			}
			l.add(req)
			open := l.drain()
			if !open {
				l.closeErr = l.shutdown()
				return
			}
			w := &l.w
			wait := len(w.waiters) > 0
			if wait || len(w.pending)-w.written >= writeBytes || len(w.pending) >= maxPendingBytes {
				l.flush(wait || len(w.pending) >= maxPendingBytes, wait)
			}
		case <-tick.C:
			if l.w.dirty || len(l.w.pending) > 0 {
				l.flush(true, false)
			}
		}
	}
}

// drain adds whatever is already queued, until the unwritten part of the
// batch reaches writeBytes. It reports false if the queue was closed.
func (l *Log) drain() bool {
	for len(l.w.pending)-l.w.written < writeBytes && len(l.w.pending) < maxPendingBytes {
		select {
		case req, ok := <-l.reqs:
			if !ok {
				return false
			}
			l.add(req)
		default:
			return true
		}
	}
	return true
}

// add numbers, chains and encodes one event into the batch. While the log
// cannot write, events still join the chain in memory (to be written when
// it can) until maxPendingBytes; beyond it they get no number and are
// logged as lost, so the chain has no gap.
func (l *Log) add(req request) {
	w := &l.w
	if req.mac != nil {
		if w.mac == nil {
			w.mac = req.mac
		}
		return
	}
	if w.failed != nil && len(w.pending) >= maxPendingBytes && (req.done != nil || !time.Now().Before(w.nextRetry)) {
		l.flush(true, true) // an AppendSync retries at once, even here
	}
	if w.failed != nil && len(w.pending) >= maxPendingBytes {
		err := fmt.Errorf("%w (%d bytes of records wait in memory, the most it keeps)", w.failed, len(w.pending))
		l.lost(req.ev, err)
		if req.done != nil {
			req.done <- err
		}
		return
	}
	ev, replaced := normalize(req.ev, l.cfg.Now)
	if replaced {
		l.cfg.Logger.Warn("audit: event time not storable; using the log's clock",
			"time", req.ev.Time, "op", ev.Op, "user", ev.User)
	}
	w.seq++
	rec := Record{Seq: w.seq, Event: ev, Prev: w.prev, Keyed: w.mac != nil}
	rec.Hash, w.scratch = recordHash(w.scratch, &rec, w.mac)
	w.pending = appendLine(w.pending, &rec)
	w.prev = rec.Hash
	w.last = rec.Anchor()
	if req.done != nil {
		w.waiters = append(w.waiters, req.done)
	}
}

// flush writes the batch and, if sync is set, fsyncs, then answers the
// waiters. A log that cannot write retries only when retryNow is set or
// its retry is due, and then always fsyncs.
func (l *Log) flush(sync, retryNow bool) {
	w := &l.w
	if w.failed == nil || retryNow || !time.Now().Before(w.nextRetry) {
		if err := l.persist(sync); err != nil {
			l.fail(err)
		} else if w.failed != nil && !w.dirty {
			l.recovered()
		}
	}
	if w.failed == nil && len(w.waiters) > 0 && w.dirty {
		return // not fsync'd yet; only reachable with sync unset
	}
	for i, c := range w.waiters {
		c <- w.failed
		w.waiters[i] = nil
	}
	w.waiters = w.waiters[:0]
	l.anchor()
}

// persist writes what of pending is not in the file and, if sync is set,
// fsyncs it, making all of pending durable. After a failed write or fsync
// the file's tail is unknown (a write may have stopped mid-line; after a
// failed fsync the kernel may have dropped the pages), so a retry first
// cuts the file back to its last durable record and writes everything
// after it again: the file never holds a record twice or half of one.
func (l *Log) persist(sync bool) error {
	w := &l.w
	if w.failed != nil {
		if err := l.f.Truncate(w.durable); err != nil {
			return fmt.Errorf("truncate to the last durable record: %w", err)
		}
		w.written, w.dirty, sync = 0, true, true
	}
	if w.written < len(w.pending) {
		if _, err := l.f.Write(w.pending[w.written:]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		w.written, w.dirty = len(w.pending), true
	}
	if !sync || !w.dirty {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	w.durable += int64(len(w.pending))
	w.pending, w.written, w.dirty = w.pending[:0], 0, false
	l.state.Lock()
	l.head = w.last
	l.state.Unlock()
	return nil
}

// anchor hands the durable head to Config.OnDurable if it moved.
func (l *Log) anchor() {
	w := &l.w
	if l.cfg.OnDurable == nil {
		return
	}
	l.state.Lock()
	head := l.head
	l.state.Unlock()
	if head == w.anchored {
		return
	}
	if err := l.cfg.OnDurable(head); err != nil {
		l.cfg.Logger.Error("audit: could not keep the log's anchor; retrying at the next flush",
			"path", l.cfg.Path, "seq", head.Seq, "err", err)
		return
	}
	w.anchored = head
}

// fail records that the log cannot write now. The records not yet durable
// stay in pending with their numbers; the next AppendSync, and the flush
// tick every retryInterval, try again (see persist).
func (l *Log) fail(err error) {
	w := &l.w
	first := w.failed == nil
	w.failed = fmt.Errorf("%w: %s: %w", ErrFailed, l.cfg.Path, err)
	w.nextRetry = time.Now().Add(retryInterval)
	l.state.Lock()
	durable := l.head.Seq
	l.failed = w.failed
	l.state.Unlock()
	if first {
		l.cfg.Logger.Error("audit: log cannot write; records wait in memory and are retried",
			"path", l.cfg.Path, "err", err, "durable_seq", durable, "pending_bytes", len(w.pending))
	}
}

// recovered clears the failure once a retry made every record durable.
func (l *Log) recovered() {
	w := &l.w
	w.failed = nil
	l.state.Lock()
	l.failed = nil
	durable := l.head.Seq
	l.state.Unlock()
	l.cfg.Logger.Info("audit: log writes again", "path", l.cfg.Path, "durable_seq", durable)
}

// shutdown flushes and fsyncs what is left (retrying a failed log once) and
// closes the file. Records it could not write are counted in the error.
func (l *Log) shutdown() error {
	l.flush(true, true)
	var err error
	if w := &l.w; w.failed != nil {
		err = fmt.Errorf("%w; records %d to %d were not written", w.failed, l.head.Seq+1, w.seq)
		l.cfg.Logger.Error("audit: closing a log that cannot write; records lost",
			"path", l.cfg.Path, "first_seq", l.head.Seq+1, "last_seq", w.seq)
	}
	return errors.Join(err, l.f.Close())
}
