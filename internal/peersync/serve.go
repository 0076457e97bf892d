package peersync

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/coffer-hsm/coffer/internal/store"
)

// Bucket returns the digest bucket of k among buckets: FNV-1a (64-bit) of
// the kind byte followed by the id, modulo buckets. It is compared across
// nodes: never change it. buckets < 1 counts as 1.
func Bucket(k Key, buckets int) int {
	if buckets <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte{byte(k.Kind)})
	h.Write([]byte(k.ID))
	return int(h.Sum64() % uint64(buckets))
}

// digest returns a bucket's digest: nil for an empty bucket, else SHA-256
// over its metas sorted by (kind, id), each encoded as kind (1 byte), id
// length (2 bytes, big-endian), id, version wall (8), logical (4), node (4),
// tombstone (1 byte, 0 or 1). It is compared across nodes: never change it.
func digest(sorted []Meta) []byte {
	if len(sorted) == 0 {
		return nil
	}
	h := sha256.New()
	var buf []byte
	for _, m := range sorted {
		buf = append(buf[:0], byte(m.Kind))
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(m.ID)))
		buf = append(buf, m.ID...)
		buf = binary.BigEndian.AppendUint64(buf, uint64(m.Version.Wall))
		buf = binary.BigEndian.AppendUint32(buf, m.Version.Logical)
		buf = binary.BigEndian.AppendUint32(buf, m.Version.Node)
		var tomb byte
		if m.Tombstone {
			tomb = 1
		}
		buf = append(buf, tomb)
		h.Write(buf)
	}
	return h.Sum(nil)
}

// local lists the store's metadata by bucket, each bucket sorted by key.
// With want non-nil, only buckets b with want[b] are filled.
func (s *Syncer) local(ctx context.Context, buckets int, want []bool) ([][]Meta, error) {
	out := make([][]Meta, buckets)
	err := s.cfg.Store.Versions(ctx, func(kind store.Kind, id string, v store.Version, tombstone bool) error {
		k := Key{kind, id}
		b := Bucket(k, buckets)
		if want == nil || want[b] {
			out[b] = append(out[b], Meta{Key: k, Version: v, Tombstone: tombstone})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peersync: list versions: %w", err)
	}
	for _, ms := range out {
		slices.SortFunc(ms, func(a, b Meta) int { return a.Key.compare(b.Key) })
	}
	return out, nil
}

func checkBuckets(buckets int) error {
	if buckets < 1 || buckets > MaxBuckets {
		return fmt.Errorf("%w: %d buckets, not in 1..%d", ErrInvalidRequest, buckets, MaxBuckets)
	}
	return nil
}

// HandlePush applies records pushed by peer from, calling OnApply for each
// record stored, and returns how many were stored. A record the store holds
// already at the same or a newer version counts as success. Every record is
// tried; the error joins the failures (a record that does not open under
// the masking key wraps store.ErrBadBox and is not stored).
func (s *Syncer) HandlePush(ctx context.Context, from uint32, recs []store.Sealed) (applied int, err error) {
	if len(recs) > maxServeBatch {
		return 0, fmt.Errorf("peersync: push from %d: %w: %d records, at most %d", from, ErrInvalidRequest, len(recs), maxServeBatch)
	}
	if ps := s.peerByID(from); ps != nil {
		ps.pushedAt.Store(s.cfg.Now().UnixNano())
	}
	var errs []error
	for _, r := range s.applyAll(ctx, recs) {
		if r.err != nil {
			s.log.Warn("refused pushed record", "from", from, "err", r.err)
			errs = append(errs, r.err)
			continue
		}
		if r.applied {
			applied++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return applied, fmt.Errorf("peersync: push from %d: %d of %d records refused: %w", from, len(errs), len(recs), err)
	}
	return applied, nil
}

// HandleDigest returns the digest of each of buckets buckets (nil for an
// empty bucket).
func (s *Syncer) HandleDigest(ctx context.Context, buckets int) ([][]byte, error) {
	if err := checkBuckets(buckets); err != nil {
		return nil, fmt.Errorf("peersync: digest: %w", err)
	}
	metas, err := s.local(ctx, buckets, nil)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, buckets)
	for b, ms := range metas {
		out[b] = digest(ms)
	}
	return out, nil
}

// HandleVersions returns the metadata of every record (tombstones included)
// in the buckets which, sorted by key.
func (s *Syncer) HandleVersions(ctx context.Context, buckets int, which []int) ([]Meta, error) {
	if err := checkBuckets(buckets); err != nil {
		return nil, fmt.Errorf("peersync: versions: %w", err)
	}
	if len(which) > buckets {
		return nil, fmt.Errorf("peersync: versions: %w: %d buckets asked of %d", ErrInvalidRequest, len(which), buckets)
	}
	want := make([]bool, buckets)
	for _, b := range which {
		if b < 0 || b >= buckets {
			return nil, fmt.Errorf("peersync: versions: %w: bucket %d not in 0..%d", ErrInvalidRequest, b, buckets-1)
		}
		want[b] = true
	}
	metas, err := s.local(ctx, buckets, want)
	if err != nil {
		return nil, err
	}
	out := []Meta{}
	for _, ms := range metas {
		out = append(out, ms...)
	}
	slices.SortFunc(out, func(a, b Meta) int { return a.Key.compare(b.Key) })
	return out, nil
}

// HandleFetch returns the sealed records of keys, tombstones included, in
// the order asked. Keys with no record (purged) or a corrupt one are left
// out, and so is the tail past about MaxBatchBytes (the first record always
// goes): a caller asks again for what it still misses.
func (s *Syncer) HandleFetch(ctx context.Context, keys []Key) ([]store.Sealed, error) {
	if len(keys) > maxServeBatch {
		return nil, fmt.Errorf("peersync: fetch: %w: %d keys, at most %d", ErrInvalidRequest, len(keys), maxServeBatch)
	}
	for _, k := range keys {
		if !k.valid() {
			return nil, fmt.Errorf("peersync: fetch: %w: key %s", ErrInvalidRequest, k)
		}
	}
	out := []store.Sealed{}
	size := 0
	for _, k := range keys {
		rec, err := s.cfg.Store.Export(ctx, k.Kind, k.ID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if _, ok := errors.AsType[*store.CorruptError](err); ok {
				s.log.Error("not serving corrupt record", "err", err)
				continue
			}
			return nil, fmt.Errorf("peersync: fetch: %w", err)
		}
		n := recSize(rec)
		if len(out) > 0 && size+n > MaxBatchBytes {
			break
		}
		out = append(out, rec)
		size += n
	}
	return out, nil
}
