package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// scanPage is how many records Scan and Versions read per read transaction.
// Callbacks run between transactions, so they may write to the store (a long
// read transaction would block bbolt from growing its mmap).
const scanPage = 256

func checkArgs(kind Kind, id string) error {
	if !kind.Valid() {
		return fmt.Errorf("invalid kind %d", uint8(kind))
	}
	if len(id) == 0 || len(id) > MaxIDLen {
		return fmt.Errorf("id length %d not in 1..%d", len(id), MaxIDLen)
	}
	return nil
}

// checkHeader parses the header of a record stored under (kind, key).
func checkHeader(kind Kind, key, raw []byte) (Sealed, error) {
	h, _, err := decodeHeader(raw)
	if err != nil {
		return Sealed{}, &CorruptError{Kind: kind, ID: string(key), Err: err}
	}
	if h.Kind != kind || h.ID != string(key) {
		return Sealed{}, &CorruptError{Kind: kind, ID: string(key),
			Err: fmt.Errorf("stored as %s %q but names %s %q", kind, key, h.Kind, h.ID)}
	}
	return h, nil
}

// openRecord parses and opens a record stored under (kind, key). Data is
// freshly allocated, never aliasing raw.
func openRecord(keys *keyring, kind Kind, key, raw []byte) (Record, error) {
	h, err := checkHeader(kind, key, raw)
	if err != nil {
		return Record{}, err
	}
	n := headerFixed + len(h.ID)
	if len(raw)-n < boxOverhead {
		return Record{}, &CorruptError{Kind: kind, ID: h.ID, Err: fmt.Errorf("box of %d bytes: %w", len(raw)-n, ErrMalformedRecord)}
	}
	data, err := keys.open(raw[:n], raw[n:])
	if err != nil {
		return Record{}, &CorruptError{Kind: kind, ID: h.ID,
			Err: errors.New("box does not open: tampered, or sealed under another masking key")}
	}
	if h.Tombstone && len(data) != 0 {
		return Record{}, &CorruptError{Kind: kind, ID: h.ID, Err: errors.New("tombstone carries a payload")}
	}
	return Record{Kind: kind, ID: h.ID, Version: h.Version, Tombstone: h.Tombstone, Data: data}, nil
}

// wrap adds context to err, except to a *CorruptError, which names its
// record already.
func wrap(err error, format string, args ...any) error {
	if _, ok := errors.AsType[*CorruptError](err); ok {
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// Put stores data as the new version of (kind, id) and returns that version,
// once it is durable.
func (s *Store) Put(ctx context.Context, kind Kind, id string, data []byte) (Version, error) {
	if err := checkArgs(kind, id); err != nil {
		return Version{}, fmt.Errorf("store: put: %w", err)
	}
	if len(data) > MaxDataLen {
		return Version{}, fmt.Errorf("store: put %s %q: payload of %d bytes exceeds %d", kind, id, len(data), MaxDataLen)
	}
	// Our own copy: the caller may reuse data once we return.
	v, err := s.write(ctx, kind, id, bytes.Clone(data), false)
	if err != nil {
		return Version{}, fmt.Errorf("store: put %s %q: %w", kind, id, err)
	}
	return v, nil
}

// Delete replaces the live record (kind, id) with a tombstone (the payload is
// erased) and returns the tombstone's version once it is durable. Deleting a
// missing or deleted record gives ErrNotFound.
func (s *Store) Delete(ctx context.Context, kind Kind, id string) (Version, error) {
	if err := checkArgs(kind, id); err != nil {
		return Version{}, fmt.Errorf("store: delete: %w", err)
	}
	v, err := s.write(ctx, kind, id, nil, true)
	if err != nil {
		return Version{}, fmt.Errorf("store: delete %s %q: %w", kind, id, err)
	}
	return v, nil
}

// write stores a new local version of a record: a put, or a tombstone.
func (s *Store) write(ctx context.Context, kind Kind, id string, data []byte, tombstone bool) (Version, error) {
	keys, err := s.keyring()
	if err != nil {
		return Version{}, err
	}
	var (
		v        Version
		notFound bool
	)
	// Idempotent: runs again with fresh outputs if its group is retried.
	err = s.commits.do(ctx, func(tx *bolt.Tx) error {
		v, notFound = Version{}, false
		b := tx.Bucket(bucketName(kind))
		raw := b.Get([]byte(id))
		var cur *Sealed // nil if absent or unparseable
		if raw != nil {
			if h, err := checkHeader(kind, []byte(id), raw); err == nil {
				cur = &h
			} else {
				s.log.Warn("overwriting corrupt record", "err", err)
			}
		}
		if tombstone && (raw == nil || (cur != nil && cur.Tombstone)) {
			notFound = true // nothing live to delete
			return nil
		}
		v = s.clock.Now()
		if cur != nil && cur.Version.Compare(v) >= 0 {
			s.clock.Observe(cur.Version) // a peer's clock ran ahead of ours
			v = s.clock.Now()
		}
		hdr := appendHeader(make([]byte, 0, headerFixed+len(id)+boxOverhead+len(data)), kind, id, v, tombstone)
		box := keys.seal(hdr, data)
		return b.Put([]byte(id), append(hdr, box...))
	})
	if err != nil {
		return Version{}, err
	}
	if notFound {
		return Version{}, ErrNotFound
	}
	return v, nil
}

// Get returns the live record (kind, id). A tombstone gives ErrNotFound; a
// record that fails to parse or open gives a *CorruptError.
func (s *Store) Get(ctx context.Context, kind Kind, id string) (Record, error) {
	if err := checkArgs(kind, id); err != nil {
		return Record{}, fmt.Errorf("store: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	keys, err := s.keyring()
	if err != nil {
		return Record{}, err
	}
	var rec Record
	err = s.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketName(kind)).Get([]byte(id))
		if raw == nil {
			return ErrNotFound
		}
		r, err := openRecord(keys, kind, []byte(id), raw)
		rec = r
		return err
	})
	if err == nil && rec.Tombstone {
		err = ErrNotFound
	}
	if err != nil {
		return Record{}, wrap(err, "store: get %s %q", kind, id)
	}
	return rec, nil
}

// Scan calls fn with each live record of kind, in id order, and stops at the
// first error, which it returns unwrapped if it came from fn. Records are read
// in pages of separate read transactions, each record as last committed.
func (s *Store) Scan(ctx context.Context, kind Kind, fn func(Record) error) error {
	if !kind.Valid() {
		return fmt.Errorf("store: scan: invalid kind %d", uint8(kind))
	}
	keys, err := s.keyring()
	if err != nil {
		return err
	}
	return s.pages(ctx, kind, func(key, raw []byte, emit func(func() error)) error {
		rec, err := openRecord(keys, kind, key, raw)
		if err != nil {
			return err
		}
		if !rec.Tombstone {
			emit(func() error { return fn(rec) })
		}
		return nil
	})
}

// Versions calls fn with the metadata of every record, tombstones included,
// kind by kind and in id order. It opens no payload and needs no masking key.
func (s *Store) Versions(ctx context.Context, fn func(kind Kind, id string, v Version, tombstone bool) error) error {
	for _, kind := range kinds() {
		err := s.pages(ctx, kind, func(key, raw []byte, emit func(func() error)) error {
			h, err := checkHeader(kind, key, raw)
			if err != nil {
				return err
			}
			emit(func() error { return fn(kind, h.ID, h.Version, h.Tombstone) })
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// pages walks a kind's bucket in id order, scanPage keys per read
// transaction. visit runs inside the transaction and may emit callbacks,
// which run after it ends. A callback's error is returned as is.
func (s *Store) pages(ctx context.Context, kind Kind, visit func(key, raw []byte, emit func(func() error)) error) error {
	var after []byte // last key visited; nil before the first page
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var calls []func() error
		emit := func(f func() error) { calls = append(calls, f) }
		done := false
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketName(kind)).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for n := 0; k != nil && n < scanPage; k, v = c.Next() {
				if err := visit(k, v, emit); err != nil {
					return err
				}
				after = append(after[:0], k...)
				n++
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return wrap(err, "store: read %s records", kind)
		}
		for _, call := range calls {
			if err := call(); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

// Export returns record (kind, id) sealed, tombstones included, for
// replication. It checks that the box opens before handing it out.
func (s *Store) Export(ctx context.Context, kind Kind, id string) (Sealed, error) {
	if err := checkArgs(kind, id); err != nil {
		return Sealed{}, fmt.Errorf("store: export: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Sealed{}, err
	}
	keys, err := s.keyring()
	if err != nil {
		return Sealed{}, err
	}
	var out Sealed
	err = s.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketName(kind)).Get([]byte(id))
		if raw == nil {
			return ErrNotFound
		}
		rec, err := openRecord(keys, kind, []byte(id), raw)
		if err != nil {
			return err
		}
		clear(rec.Data)
		return out.UnmarshalBinary(raw) // copies out of the mmap
	})
	if err != nil {
		return Sealed{}, wrap(err, "store: export %s %q", kind, id)
	}
	return out, nil
}

// Apply stores a record from a peer if its version is newer than the stored
// one (last writer wins; versions tie-break on node id) and reports whether it
// did. The box must open under this store's masking key, with the record's
// metadata as associated data; otherwise nothing is stored and the error
// wraps ErrBadBox. The clock moves past rec.Version either way.
func (s *Store) Apply(ctx context.Context, rec Sealed) (bool, error) {
	raw, err := rec.MarshalBinary()
	if err != nil {
		return false, fmt.Errorf("store: apply: %w", err)
	}
	keys, err := s.keyring()
	if err != nil {
		return false, err
	}
	n := headerFixed + len(rec.ID)
	data, err := keys.open(raw[:n], raw[n:])
	if err != nil {
		return false, fmt.Errorf("store: apply %s %q %s: %w", rec.Kind, rec.ID, rec.Version, ErrBadBox)
	}
	clear(data)
	if rec.Tombstone && len(data) != 0 {
		return false, fmt.Errorf("store: apply %s %q %s: tombstone carries a payload: %w", rec.Kind, rec.ID, rec.Version, ErrBadBox)
	}
	s.clock.Observe(rec.Version)
	var applied bool
	// Idempotent: runs again with fresh outputs if its group is retried.
	err = s.commits.do(ctx, func(tx *bolt.Tx) error {
		applied = false
		b := tx.Bucket(bucketName(rec.Kind))
		if cur := b.Get([]byte(rec.ID)); cur != nil {
			h, err := checkHeader(rec.Kind, []byte(rec.ID), cur)
			if err == nil && h.Version.Compare(rec.Version) >= 0 {
				return nil
			}
			if err != nil {
				s.log.Warn("replacing corrupt record with a peer's copy", "err", err, "version", rec.Version.String())
			}
		}
		applied = true
		return b.Put([]byte(rec.ID), raw)
	})
	if err != nil {
		return false, fmt.Errorf("store: apply %s %q %s: %w", rec.Kind, rec.ID, rec.Version, err)
	}
	return applied, nil
}

// PurgeTombstone removes the tombstone of (kind, id) at version v, once every
// peer has it. It does nothing if the record is already gone, and gives
// ErrStale if the record is live or at another version.
func (s *Store) PurgeTombstone(ctx context.Context, kind Kind, id string, v Version) error {
	if err := checkArgs(kind, id); err != nil {
		return fmt.Errorf("store: purge: %w", err)
	}
	var stale bool
	// Idempotent: runs again with fresh outputs if its group is retried.
	err := s.commits.do(ctx, func(tx *bolt.Tx) error {
		stale = false
		b := tx.Bucket(bucketName(kind))
		raw := b.Get([]byte(id))
		if raw == nil {
			return nil
		}
		h, err := checkHeader(kind, []byte(id), raw)
		if err != nil {
			return err
		}
		if !h.Tombstone || h.Version != v {
			stale = true
			return nil
		}
		return b.Delete([]byte(id))
	})
	if err == nil && stale {
		err = ErrStale
	}
	if err != nil {
		return fmt.Errorf("store: purge %s %q %s: %w", kind, id, v, err)
	}
	return nil
}

// OpenSealed opens a sealed record under this store's masking key, with its
// metadata as associated data, without storing it: how a record that comes
// from outside the cluster (a replica of a clone's record) is checked before
// Apply. A box that does not open gives ErrBadBox.
func (s *Store) OpenSealed(rec Sealed) (Record, error) {
	raw, err := rec.MarshalBinary()
	if err != nil {
		return Record{}, fmt.Errorf("store: open: %w", err)
	}
	keys, err := s.keyring()
	if err != nil {
		return Record{}, err
	}
	n := headerFixed + len(rec.ID)
	data, err := keys.open(raw[:n], raw[n:])
	if err != nil {
		return Record{}, fmt.Errorf("store: open %s %q %s: %w", rec.Kind, rec.ID, rec.Version, ErrBadBox)
	}
	if rec.Tombstone && len(data) != 0 {
		clear(data)
		return Record{}, fmt.Errorf("store: open %s %q %s: tombstone carries a payload: %w", rec.Kind, rec.ID, rec.Version, ErrBadBox)
	}
	return Record{Kind: rec.Kind, ID: rec.ID, Version: rec.Version, Tombstone: rec.Tombstone, Data: data}, nil
}
