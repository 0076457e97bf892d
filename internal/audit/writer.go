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

// writer is the state of the writer goroutine; only it touches it.
type writer struct {
	seq     uint64   // last sequence number assigned
	prev    [32]byte // hash of record seq
	last    Anchor   // last record encoded
	written Anchor   // last record written to the file (maybe not fsync'd)
	buf     []byte   // encoded lines not yet written
	scratch []byte
	waiters []chan<- error // AppendSync callers in buf or written but not fsync'd
	dirty   bool           // bytes written since the last fsync
	failed  error          // sticky copy of Log.failed
	mac     hash.Hash      // HMAC under the log key; nil while unkeyed
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
			if len(l.w.waiters) > 0 || len(l.w.buf) >= writeBytes {
				l.flush(len(l.w.waiters) > 0)
			}
		case <-tick.C:
			if l.w.dirty || len(l.w.buf) > 0 {
				l.flush(true)
			}
		}
	}
}

// drain adds whatever is already queued, until the batch reaches
// writeBytes. It reports false if the queue was closed.
func (l *Log) drain() bool {
	for len(l.w.buf) < writeBytes {
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

// add numbers, chains and encodes one event into the batch.
func (l *Log) add(req request) {
	w := &l.w
	if req.mac != nil {
		if w.mac == nil {
			w.mac = req.mac
		}
		return
	}
	if w.failed != nil {
		l.lost(req.ev, w.failed)
		if req.done != nil {
			req.done <- w.failed
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
	w.buf = appendLine(w.buf, &rec)
	w.prev = rec.Hash
	w.last = rec.Anchor()
	if req.done != nil {
		w.waiters = append(w.waiters, req.done)
	}
}

// flush writes the batch and, if sync is set, fsyncs, then answers the
// waiters.
func (l *Log) flush(sync bool) {
	w := &l.w
	if w.failed == nil && len(w.buf) > 0 {
		if _, err := l.f.Write(w.buf); err != nil {
			l.fail(fmt.Errorf("write: %w", err))
		} else {
			w.dirty = true
			w.written = w.last
		}
	}
	w.buf = w.buf[:0]
	if w.failed == nil && sync && w.dirty {
		if err := l.f.Sync(); err != nil {
			l.fail(fmt.Errorf("fsync: %w", err))
		} else {
			w.dirty = false
			l.state.Lock()
			l.head = w.written
			l.state.Unlock()
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

// anchor hands the durable head to Config.OnDurable if it moved.
func (l *Log) anchor() {
	w := &l.w
	if l.cfg.OnDurable == nil || w.failed != nil {
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

// fail stops the log for good: after a failed write the file's tail is
// unknown and after a failed fsync the kernel may have dropped the pages,
// so nothing more is appended.
func (l *Log) fail(err error) {
	l.state.Lock()
	durable := l.head.Seq
	l.w.failed = fmt.Errorf("%w: %s: %w", ErrFailed, l.cfg.Path, err)
	l.failed = l.w.failed
	l.state.Unlock()
	l.cfg.Logger.Error("audit: log failed; no further records will be written",
		"path", l.cfg.Path, "err", err, "durable_seq", durable)
}

// shutdown flushes and fsyncs what is left and closes the file.
func (l *Log) shutdown() error {
	l.flush(true)
	return errors.Join(l.w.failed, l.f.Close())
}
