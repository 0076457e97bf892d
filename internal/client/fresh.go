package client

import (
	"sync"
	"sync/atomic"
	"time"
)

// freshLimit bounds the fresh-object table: past it, the oldest entries are
// dropped (their objects are then routed like any other).
const freshLimit = 1 << 16

// freshTable remembers, for token objects this client created recently,
// which HSMs are known to hold them (a mask of member indexes), so that
// operations on them go there until replication has converged: the window
// has passed, or every HSM has proved it holds the object.
type freshTable struct {
	window time.Duration
	limit  int
	now    func() time.Time
	size   atomic.Int64 // len(entries), read without the lock on the hot path

	mu      sync.Mutex
	entries map[ObjectID]freshEntry
	order   []freshItem // insertion (and so expiry) order; may hold stale items
}

type freshEntry struct {
	holders uint64
	expires time.Time
}

type freshItem struct {
	id      ObjectID
	expires time.Time
}

func newFreshTable(window time.Duration, limit int, now func() time.Time) *freshTable {
	return &freshTable{window: window, limit: limit, now: now, entries: map[ObjectID]freshEntry{}}
}

// add records that the HSMs of holders hold id; all is every member.
func (t *freshTable) add(id ObjectID, holders, all uint64) {
	if holders == 0 || holders&all == all {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := freshEntry{holders: holders, expires: now.Add(t.window)}
	t.entries[id] = e
	t.order = append(t.order, freshItem{id, e.expires})
	t.prune(now)
	t.size.Store(int64(len(t.entries)))
}

// prune drops expired entries and, past the limit, the oldest ones; it also
// keeps order from growing with stale items. t.mu is held.
func (t *freshTable) prune(now time.Time) {
	for len(t.order) > 0 {
		it := t.order[0]
		e, ok := t.entries[it.id]
		live := ok && e.expires.Equal(it.expires)
		if live && now.Before(it.expires) && len(t.entries) <= t.limit {
			break
		}
		if live {
			delete(t.entries, it.id)
		}
		t.order = t.order[1:]
	}
	if len(t.order) > 2*t.limit { // mostly stale: converged or destroyed objects
		kept := make([]freshItem, 0, len(t.entries))
		for _, it := range t.order {
			if e, ok := t.entries[it.id]; ok && e.expires.Equal(it.expires) {
				kept = append(kept, it)
			}
		}
		t.order = kept
	}
}

// holders returns the HSMs known to hold every fresh object of ids, and
// whether any of ids is fresh.
func (t *freshTable) holders(ids []ObjectID) (uint64, bool) {
	if len(ids) == 0 || t.size.Load() == 0 {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	mask, fresh := ^uint64(0), false
	for _, id := range ids {
		e, ok := t.entries[id]
		if !ok {
			continue
		}
		if !now.Before(e.expires) {
			delete(t.entries, id)
			continue
		}
		mask &= e.holders
		fresh = true
	}
	t.size.Store(int64(len(t.entries)))
	return mask, fresh
}

// seen records that the HSM of bit holds ids (it used or listed them).
func (t *freshTable) seen(ids []ObjectID, bit, all uint64) {
	if len(ids) == 0 || t.size.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		e, ok := t.entries[id]
		if !ok || e.holders&bit != 0 {
			continue
		}
		e.holders |= bit
		if e.holders&all == all {
			delete(t.entries, id) // every HSM has it: converged
		} else {
			t.entries[id] = e
		}
	}
	t.size.Store(int64(len(t.entries)))
}

// forget drops id (destroyed).
func (t *freshTable) forget(id ObjectID) {
	if t.size.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, id)
	t.size.Store(int64(len(t.entries)))
}

// elsewhere returns the HSMs holding fresh objects that the HSM of bit is not
// known to hold.
func (t *freshTable) elsewhere(bit uint64) uint64 {
	if t.size.Load() == 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var mask uint64
	for _, e := range t.entries {
		if e.holders&bit == 0 && now.Before(e.expires) {
			mask |= e.holders
		}
	}
	return mask
}
