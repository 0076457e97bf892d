package peersync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coffer-hsm/coffer/internal/store"
)

// This file: one-way anti-entropy to a clone (a replication link). A clone
// is another cluster holding the same masking key; a link keeps chosen
// kinds of records (token objects, users) of this cluster on it. It is the
// anti-entropy of a round (digests over buckets, versions of the buckets
// that differ, push of what is newer here) restricted to those kinds and to
// one direction: nothing is fetched from the clone, and its own records,
// newer versions included, stay as they are (last writer wins there too).
// The cursor is the comparison itself, so it is as durable as the two
// stores: what changed here while the clone was unreachable, or while this
// node was down, is found and pushed by the first round that reaches it.

// ErrKindNotLinked: a link request named, or carried, a kind of record the
// link does not admit.
var ErrKindNotLinked = errors.New("peersync: record kind not admitted by the replication link")

// LinkTarget is the clone's side of a link, as Mirror uses it. Its Digest
// and Versions cover only the kinds given to Mirror (the serving side is
// HandleLinkDigest, HandleLinkVersions, HandleLinkPush).
type LinkTarget interface {
	Digest(ctx context.Context, buckets int) ([][]byte, error)
	Versions(ctx context.Context, buckets int, which []int) ([]Meta, error)
	Push(ctx context.Context, recs []store.Sealed) (applied int, err error)
}

// MirrorResult is what one Mirror round did.
type MirrorResult struct {
	// Snapshot is when the local records were listed: once a round
	// succeeds, the clone holds every change made here before it.
	Snapshot time.Time
	// Behind counts the local records the clone lacked or held older at
	// the start of the round; Pushed those the round delivered.
	Behind, Pushed int
	// Oldest is the version time of the oldest record of Behind (zero if none).
	Oldest time.Time
	// Reached: the clone answered the round's digest.
	Reached bool
}

// kindSet checks a kind list and returns it as a set.
func kindSet(kinds []store.Kind) (map[store.Kind]bool, error) {
	set := make(map[store.Kind]bool, len(kinds))
	for _, k := range kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("%w: kind %d", ErrInvalidRequest, k)
		}
		set[k] = true
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%w: no record kinds", ErrInvalidRequest)
	}
	return set, nil
}

// localKinds is local restricted to kinds.
func (s *Syncer) localKinds(ctx context.Context, buckets int, want []bool, kinds map[store.Kind]bool) ([][]Meta, error) {
	metas, err := s.local(ctx, buckets, want)
	if err != nil {
		return nil, err
	}
	for b, ms := range metas {
		metas[b] = slices.DeleteFunc(ms, func(m Meta) bool { return !kinds[m.Kind] })
	}
	return metas, nil
}

// Mirror runs one one-way round with a clone: afterwards (if it returns nil)
// the clone holds every record of kinds this store held at the round's
// snapshot, at its version or a newer one. Tombstones older than
// TombstoneTTL are not shipped to a clone that lacks the key.
func (s *Syncer) Mirror(ctx context.Context, target LinkTarget, kinds []store.Kind) (MirrorResult, error) {
	set, err := kindSet(kinds)
	if err != nil {
		return MirrorResult{}, err
	}
	snap := &snapshot{now: s.cfg.Now()}
	res := MirrorResult{Snapshot: snap.now}
	if snap.metas, err = s.localKinds(ctx, s.cfg.Buckets, nil, set); err != nil {
		return res, err
	}
	buckets := len(snap.metas)
	cctx, cancel := s.callCtx(ctx)
	remote, err := target.Digest(cctx, buckets)
	cancel()
	if err != nil {
		return res, fmt.Errorf("peersync: link digest: %w", err)
	}
	if len(remote) != buckets {
		return res, fmt.Errorf("peersync: link digest: %d buckets, asked %d", len(remote), buckets)
	}
	res.Reached = true
	var diff []int
	inDiff := make([]bool, buckets)
	for b, ms := range snap.metas {
		if !bytes.Equal(remote[b], digest(ms)) {
			diff = append(diff, b)
			inDiff[b] = true
		}
	}
	theirs := make(map[Key]Meta)
	for chunk := range slices.Chunk(diff, versionsChunk) {
		cctx, cancel := s.callCtx(ctx)
		ms, err := target.Versions(cctx, buckets, chunk)
		cancel()
		if err != nil {
			return res, fmt.Errorf("peersync: link versions: %w", err)
		}
		for _, m := range ms {
			if !m.valid() || !set[m.Kind] || !inDiff[Bucket(m.Key, buckets)] {
				continue
			}
			if old, ok := theirs[m.Key]; !ok || m.Version.Compare(old.Version) > 0 {
				theirs[m.Key] = m
			}
		}
	}
	var push []Key
	for _, b := range diff {
		for _, m := range snap.metas[b] {
			r, ok := theirs[m.Key]
			switch {
			case !ok && s.candidate(snap, m):
				// an old tombstone the clone never had: nothing to delete there
			case !ok, r.Version.Compare(m.Version) < 0:
				push = append(push, m.Key)
				if t := time.Unix(0, m.Version.Wall); res.Oldest.IsZero() || t.Before(res.Oldest) {
					res.Oldest = t
				}
			}
		}
	}
	res.Behind = len(push)
	slices.SortFunc(push, Key.compare)
	// Users go first, in pushes of their own: the clone admits a key only
	// once its owner is a user there. Deletions of users go last: the clone
	// deletes a user only once the user owns no keys there, so the
	// deletions of the user's keys must be there first.
	gone := make(map[Key]bool)
	for _, ms := range snap.metas {
		for _, m := range ms {
			if m.Kind == store.KindUser && m.Tombstone {
				gone[m.Key] = true
			}
		}
	}
	users := slices.DeleteFunc(slices.Clone(push), func(k Key) bool { return k.Kind != store.KindUser || gone[k] })
	deleted := slices.DeleteFunc(slices.Clone(push), func(k Key) bool { return !gone[k] })
	rest := slices.DeleteFunc(push, func(k Key) bool { return k.Kind == store.KindUser })
	pushed := 0
	send := func(ctx context.Context, recs []store.Sealed) error {
		_, err := target.Push(ctx, recs)
		if err == nil {
			pushed += len(recs)
		}
		return err
	}
	// A group the clone refused in part does not hold up the next: the
	// clone refuses each record on its own (a user whose role differs
	// there, say), and keys of the users it took still go.
	var errs []error
	for _, group := range [][]Key{users, rest, deleted} {
		if ctx.Err() != nil {
			break
		}
		if err := s.pushRecords(ctx, "link", send, slices.Values(group)); err != nil {
			errs = append(errs, err)
		}
	}
	err = errors.Join(errs...)
	res.Pushed = pushed
	if err != nil {
		return res, err
	}
	return res, nil
}

// HandleLinkDigest is HandleDigest over the records of kinds only.
func (s *Syncer) HandleLinkDigest(ctx context.Context, buckets int, kinds []store.Kind) ([][]byte, error) {
	if err := checkBuckets(buckets); err != nil {
		return nil, fmt.Errorf("peersync: link digest: %w", err)
	}
	set, err := kindSet(kinds)
	if err != nil {
		return nil, fmt.Errorf("peersync: link digest: %w", err)
	}
	metas, err := s.localKinds(ctx, buckets, nil, set)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, buckets)
	for b, ms := range metas {
		out[b] = digest(ms)
	}
	return out, nil
}

// HandleLinkVersions is HandleVersions over the records of kinds only.
func (s *Syncer) HandleLinkVersions(ctx context.Context, buckets int, which []int, kinds []store.Kind) ([]Meta, error) {
	set, err := kindSet(kinds)
	if err != nil {
		return nil, fmt.Errorf("peersync: link versions: %w", err)
	}
	all, err := s.HandleVersions(ctx, buckets, which)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(m Meta) bool { return !set[m.Kind] }), nil
}

// HandleLinkPush applies records a linked cluster pushed, one by one, and
// returns how many were stored. A record of a kind not in kinds refuses the
// whole push (ErrKindNotLinked): the sender is not keeping to the link.
// Each record is given to admit with the function that stores it
// (Store.Apply): admit checks the record and calls it in the same critical
// section, so nothing changes here between the check and the write, and
// reports whether the store took it; OnApply follows, as for a peer's
// record, under the same per-key lock. One admit refuses is not applied,
// the others are, and the error joins the refusals (a record that does not
// open under this store's masking key should wrap store.ErrBadBox).
func (s *Syncer) HandleLinkPush(ctx context.Context, recs []store.Sealed, kinds []store.Kind,
	admit func(ctx context.Context, rec store.Sealed, apply func(context.Context) (bool, error)) (bool, error)) (applied int, err error) {
	if len(recs) > maxServeBatch {
		return 0, fmt.Errorf("peersync: link push: %w: %d records, at most %d", ErrInvalidRequest, len(recs), maxServeBatch)
	}
	set, err := kindSet(kinds)
	if err != nil {
		return 0, fmt.Errorf("peersync: link push: %w", err)
	}
	for _, r := range recs {
		if !set[r.Kind] {
			return 0, fmt.Errorf("peersync: link push: %s: %w", Key{r.Kind, r.ID}, ErrKindNotLinked)
		}
	}
	var errs []error
	for _, r := range recs {
		ok, err := s.admitApply(ctx, r, admit)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", Key{r.Kind, r.ID}, err))
			continue
		}
		if ok {
			applied++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return applied, fmt.Errorf("peersync: link push: %d of %d records refused: %w", len(errs), len(recs), err)
	}
	return applied, nil
}

// admitApply is apply with admit between the key's lock and the store
// write. Records apply one at a time (each its own commit): the device
// serializes the check and the write of every record from a clone, as it
// does local changes.
func (s *Syncer) admitApply(ctx context.Context, rec store.Sealed,
	admit func(ctx context.Context, rec store.Sealed, apply func(context.Context) (bool, error)) (bool, error)) (bool, error) {
	unlock := s.applyLocks.lock(Key{rec.Kind, rec.ID})
	defer unlock()
	ctx = context.WithoutCancel(ctx) // once stored, OnApply must run (apply)
	applied, err := admit(ctx, rec, func(ctx context.Context) (bool, error) { return s.cfg.Store.Apply(ctx, rec) })
	if err != nil {
		return false, err
	}
	if applied && s.cfg.OnApply != nil {
		s.cfg.OnApply(ctx, rec)
	}
	return applied, nil
}
