package peersync

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/coffer-hsm/coffer/internal/store"
)

// Replicate pushes the local record k to every peer at once and returns the
// ids of the peers that stored it (they hold it at its version or a newer
// one) as soon as need of them did, or when every peer has answered or ctx
// has ended, whichever comes first. need counts peers, not this node. With
// fewer than need the error wraps ErrTooFewPeers (and ctx.Err() if the
// context ended). Before returning it stops the pushes still running (each
// Peer returns promptly once its context ends); peers that did not store the
// record get it through their send queue, as after Notify. need <= 0 only
// queues the record, like Notify.
func (s *Syncer) Replicate(ctx context.Context, k Key, need int) (storedOn []uint32, err error) {
	rec, err := s.cfg.Store.Export(ctx, k.Kind, k.ID)
	if err != nil {
		return nil, fmt.Errorf("peersync: replicate %s: %w", k, err)
	}
	storedOn = []uint32{}
	if need <= 0 {
		s.Notify(k)
		return storedOn, nil
	}

	type answer struct {
		ps  *peerState
		err error
	}
	pctx, cancel := context.WithCancel(ctx)
	answers := make(chan answer, len(s.peers)) // never blocks a sender
	var wg sync.WaitGroup
	for _, ps := range s.peers {
		wg.Go(func() {
			cctx, ccancel := s.callCtx(pctx)
			defer ccancel()
			_, err := ps.peer.Push(cctx, []store.Sealed{rec})
			answers <- answer{ps, err}
		})
	}
	collect := func(a answer) {
		if a.err != nil {
			s.log.Debug("replicate: peer did not store", "peer", a.ps.id, "key", k.String(), "err", a.err)
			return
		}
		storedOn = append(storedOn, a.ps.id)
	}
wait:
	for range s.peers {
		select {
		case a := <-answers:
			collect(a)
			if len(storedOn) >= need {
				break wait
			}
		case <-ctx.Done():
			break wait
		}
	}
	cancel()
	wg.Wait()
	close(answers)
	for a := range answers { // those that answered while we stopped
		collect(a)
	}

	now := s.cfg.Now()
	for _, ps := range s.peers {
		if !slices.Contains(storedOn, ps.id) {
			s.enqueue(ps, k, now)
		}
	}
	if len(storedOn) < need {
		if cerr := ctx.Err(); cerr != nil {
			return storedOn, fmt.Errorf("peersync: replicate %s: stored on %d of %d peers, need %d: %w: %w",
				k, len(storedOn), len(s.peers), need, ErrTooFewPeers, cerr)
		}
		return storedOn, fmt.Errorf("peersync: replicate %s: stored on %d of %d peers, need %d: %w",
			k, len(storedOn), len(s.peers), need, ErrTooFewPeers)
	}
	return storedOn, nil
}
