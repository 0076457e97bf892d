// Package audit owns a node's audit log: an append-only, hash-chained file
// recording every login, user change and key creation, use, deletion and
// share, and the verifier that detects any edit, deletion, insertion or
// reordering of its records, and, with the log's key and anchor, any
// rewrite or cut.
//
// # Format
//
// The log is a file of JSON lines, one record per line, every line ending in
// '\n':
//
//	{"v":1,"seq":1,"time":"2025-01-02T03:04:05.123Z","user":"alice","role":"crypto-user","session":7,"op":"key.sign","object":42,"target":"","result":"ok","prev":"00…00","hash":"9f…"}
//
// Seq starts at 1 and grows by exactly one. Prev is the previous record's
// Hash (all zeros for record 1). In a keyed record ("v":2) Hash is
// HMAC-SHA256 under the log key ([DeriveKey] of the cluster's masking key,
// which only HSMs hold; the file holds no key) over a length-prefixed binary
// encoding of a version tag, seq, every event field and prev (see
// appendCanonical), so no two distinct records share an encoding and nobody
// without the key can make a record that verifies. An unkeyed record
// ("v":1, written by older versions, or before a joining node has its
// masking key) carries plain SHA-256 of the same encoding; once a log has a
// keyed record every later one must be keyed. A line
// must be byte-for-byte the encoding the writer would produce for the record
// it parses to; any other spelling of the same JSON is rejected, so every
// byte of the file is covered.
//
// # What verification proves
//
// [VerifyKeyed] (with the key) and [Verify] (unkeyed logs only; a keyed
// record is ErrKeyRequired) recompute the chain; [NewReader] reads a keyed
// log without checking its MACs, [NewKeyedReader] checks them. Editing a field without fixing
// the hash fails at that record; fixing the hash breaks the next record's
// prev; deleting, inserting or swapping lines breaks seq and prev. What a
// chain alone cannot show is that records were cut off the end: a truncated
// log is a valid shorter log. For that a caller keeps an [Anchor] (a
// sequence number and its hash, as returned by [Log.Head] or handed to
// [Config.OnDurable] after each durable flush) somewhere the attacker cannot
// rewrite — the node keeps it in its sealed store — and passes it to
// [VerifyKeyed] or [Config.Anchor]; the log must then contain that exact
// record. The anchor also defeats a log rewritten entirely as unkeyed
// records, which the key alone would accept as an older log.
//
// # Writing
//
// [Log] has one writer goroutine that owns the file. [Log.Append] is the hot
// path (a crypto operation calls it once per operation): it stamps the time
// if unset and puts the event on a bounded queue without allocating; the
// writer encodes, batches, writes, and fsyncs at least every
// Config.FlushInterval. When the queue is full Append blocks until the
// writer catches up: a record is never dropped to keep a caller fast.
// [Log.AppendSync] (management operations) returns only after its record and
// every record before it are written and fsync'd. If a write or fsync
// fails (a full disk: ENOSPC) [Log.Err] reports it and AppendSync returns
// it; an HSM should refuse operations it cannot audit. The records not yet
// durable keep their numbers and stay in memory (up to a bound; events
// beyond it get no number and are logged at error level through the
// injected slog.Logger), and the log retries at the next AppendSync and
// every second: it cuts the file back to its last durable record (the
// tail after a failed write or fsync is unknown) and writes them again, so
// the chain has neither a gap nor a fork. Once that succeeds Err is nil
// again and the anchor moves on.
//
// # Crashes
//
// A crash can leave the last write incomplete. [Open] verifies the whole
// file; if the only problem is bytes after the last '\n' (an incomplete
// final line), they are truncated away with a logged warning. Such a record
// was never acknowledged: AppendSync returns only after the full line,
// newline included, was written and fsync'd. Any other damage, including a
// complete but corrupt last line, makes Open fail with a [*VerifyError]:
// the log is evidence and is not repaired automatically. Records passed to
// Append within the last FlushInterval before an operating-system crash may
// be lost; use AppendSync where that matters.
//
// This package imports nothing from internal/ but internal/durable, and no
// networking packages (internal/layers_test.go holds it to that).
package audit
