package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// storeKind maps the device's record kinds to the store's.
func storeKind(k hsm.RecordKind) (store.Kind, error) {
	switch k {
	case hsm.RecordObject:
		return store.KindObject, nil
	case hsm.RecordUser:
		return store.KindUser, nil
	case hsm.RecordSetting:
		return store.KindSetting, nil
	}
	return 0, fmt.Errorf("node: unknown record kind %d", k)
}

func deviceKind(k store.Kind) (hsm.RecordKind, error) {
	switch k {
	case store.KindObject:
		return hsm.RecordObject, nil
	case store.KindUser:
		return hsm.RecordUser, nil
	case store.KindSetting:
		return hsm.RecordSetting, nil
	}
	return 0, fmt.Errorf("node: unknown record kind %d", k)
}

// deviceStore is the hsm.Store of the node's device: writes go to the sealed
// store and, once durable, to peersync to push to peers.
type deviceStore struct {
	n *Node
}

func (s deviceStore) Put(ctx context.Context, kind hsm.RecordKind, id string, data []byte) error {
	k, err := storeKind(kind)
	if err != nil {
		return err
	}
	if _, err := s.n.store.Put(ctx, k, id, data); err != nil {
		return err
	}
	s.n.propagate(ctx, peersync.Key{Kind: k, ID: id})
	return nil
}

func (s deviceStore) Delete(ctx context.Context, kind hsm.RecordKind, id string) error {
	k, err := storeKind(kind)
	if err != nil {
		return err
	}
	_, err = s.n.store.Delete(ctx, k, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a peer deleted it first: the outcome the device wants
	}
	if err != nil {
		return err
	}
	s.n.propagate(ctx, peersync.Key{Kind: k, ID: id})
	return nil
}

func (s deviceStore) Scan(ctx context.Context, kind hsm.RecordKind, fn func(id string, data []byte) error) error {
	k, err := storeKind(kind)
	if err != nil {
		return err
	}
	return s.n.store.Scan(ctx, k, func(r store.Record) error { return fn(r.ID, r.Data) })
}

// userSyncTimeout bounds how long a user or settings change waits for peers.
const userSyncTimeout = time.Second

// propagate tells the syncer about a local write. Keys go out in the
// background; users and cluster settings (activation, quorum values) are
// pushed to every reachable peer before the change is acknowledged, within
// userSyncTimeout, so a user created or a password changed through one HSM
// holds on the others as soon as the call returns (a peer that is down
// catches up by anti-entropy). Before the syncer runs, anti-entropy finds
// the write instead.
func (n *Node) propagate(ctx context.Context, k peersync.Key) {
	s := n.syncer.Load()
	if s == nil {
		return
	}
	if k.Kind == store.KindObject || len(n.peers) == 0 {
		s.Notify(k)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, userSyncTimeout)
	defer cancel()
	if got, err := s.Replicate(ctx, k, len(n.peers)); err != nil {
		n.log.Info("user change not yet on every HSM; anti-entropy will deliver it", "key", k, "on", got, "err", err)
	}
}

// onApply reloads a record a peer delivered into the device. It reads the
// record as stored now (the payload in clear), so a reload never goes back
// to an older version than the store holds.
func (n *Node) onApply(ctx context.Context, rec store.Sealed) {
	n.loadMu.RLock()
	defer n.loadMu.RUnlock()
	dev := n.dev.Load()
	if dev == nil {
		return // the device loads everything from the store when it starts
	}
	kind, err := deviceKind(rec.Kind)
	if err != nil {
		n.log.Warn("record from peer not reloaded", "kind", rec.Kind, "id", rec.ID, "err", err)
		return
	}
	load := func() ([]byte, error) {
		r, err := n.store.Get(ctx, rec.Kind, rec.ID)
		switch {
		case err == nil:
			return r.Data, nil
		case errors.Is(err, store.ErrNotFound):
			return nil, nil // a tombstone
		}
		return nil, err
	}
	if err := dev.Reload(kind, rec.ID, load); err != nil {
		n.log.Warn("record from peer not reloaded", "kind", rec.Kind, "id", rec.ID, "err", err)
		return
	}
	if kind == hsm.RecordObject && !rec.Tombstone {
		// A resent creation's objects may meet those of an earlier send here.
		if id, err := hsm.ParseObjectID(rec.ID); err == nil {
			if err := dev.SettleCreation(ctx, id); err != nil {
				n.log.Warn("could not settle a resent creation", "object", rec.ID, "err", err)
			}
		}
	}
}
