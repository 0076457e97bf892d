package peersync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// linkTo is the clone's side of a link, in process: the clone's own syncer
// serving the link requests for kinds, admitting only those kinds.
type linkTo struct {
	sy    *peersync.Syncer
	kinds []store.Kind
}

// admit refuses records whose id starts with "refuse", and stores the others.
func (l linkTo) admit(ctx context.Context, r store.Sealed, apply func(context.Context) (bool, error)) (bool, error) {
	if strings.HasPrefix(r.ID, "refuse") {
		return false, errors.New("refused by the clone")
	}
	return apply(ctx)
}

func (l linkTo) Digest(ctx context.Context, buckets int) ([][]byte, error) {
	return l.sy.HandleLinkDigest(ctx, buckets, l.kinds)
}

func (l linkTo) Versions(ctx context.Context, buckets int, which []int) ([]peersync.Meta, error) {
	return l.sy.HandleLinkVersions(ctx, buckets, which, l.kinds)
}

func (l linkTo) Push(ctx context.Context, recs []store.Sealed) (int, error) {
	return l.sy.HandleLinkPush(ctx, recs, l.kinds, l.admit)
}

func TestMirror(t *testing.T) {
	ctx := t.Context()
	a := newCluster(t, clusterOpts{nodes: 1})
	b := newCluster(t, clusterOpts{nodes: 1, mk: map[uint32][]byte{1: a.mk}})
	for i := range 300 {
		a.put(1, store.KindObject, fmt.Sprintf("obj-%03d", i), []byte("key"))
	}
	a.put(1, store.KindUser, "alice", []byte("user"))
	a.put(1, store.KindSetting, "cluster", []byte("A's settings"))
	b.put(1, store.KindSetting, "cluster", []byte("B's settings"))
	b.put(1, store.KindObject, "b-own", []byte("B's key"))
	target := linkTo{sy: b.node(1).sy, kinds: []store.Kind{store.KindObject}}

	res, err := a.node(1).sy.Mirror(ctx, target, []store.Kind{store.KindObject})
	if err != nil {
		t.Fatal(err)
	}
	if res.Behind != 300 || res.Pushed != 300 {
		t.Fatalf("first round: %+v, want 300 behind and pushed", res)
	}
	if got := b.node(1).appliedCount(); got != 300 {
		t.Fatalf("clone applied %d records through OnApply, want 300", got)
	}
	st := b.node(1).st
	if r, err := st.Get(ctx, store.KindSetting, "cluster"); err != nil || string(r.Data) != "B's settings" {
		t.Fatalf("clone's settings: %q, %v", r.Data, err)
	}
	if _, err := st.Get(ctx, store.KindUser, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a user crossed a link of objects: %v", err)
	}
	if _, err := st.Get(ctx, store.KindObject, "b-own"); err != nil {
		t.Fatalf("the clone's own key: %v", err)
	}

	// In sync: nothing behind. A change and a deletion go in the next round.
	if res, err = a.node(1).sy.Mirror(ctx, target, []store.Kind{store.KindObject}); err != nil || res.Behind != 0 {
		t.Fatalf("second round: %+v, %v", res, err)
	}
	a.put(1, store.KindObject, "obj-007", []byte("changed"))
	if _, err := a.node(1).st.Delete(ctx, store.KindObject, "obj-008"); err != nil {
		t.Fatal(err)
	}
	if res, err = a.node(1).sy.Mirror(ctx, target, []store.Kind{store.KindObject}); err != nil || res.Behind != 2 || res.Pushed != 2 {
		t.Fatalf("third round: %+v, %v", res, err)
	}
	if r, err := st.Get(ctx, store.KindObject, "obj-007"); err != nil || string(r.Data) != "changed" {
		t.Fatalf("changed key on the clone: %q, %v", r.Data, err)
	}
	if _, err := st.Get(ctx, store.KindObject, "obj-008"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted key on the clone: %v", err)
	}
}

// A link that admits objects refuses a whole push carrying anything else.
func TestLinkPushRefusesOtherKinds(t *testing.T) {
	ctx := t.Context()
	a := newCluster(t, clusterOpts{nodes: 1})
	b := newCluster(t, clusterOpts{nodes: 1, mk: map[uint32][]byte{1: a.mk}})
	a.put(1, store.KindObject, "obj", []byte("key"))
	a.put(1, store.KindSetting, "cluster", []byte("A's settings"))
	var recs []store.Sealed
	for _, k := range []peersync.Key{{Kind: store.KindObject, ID: "obj"}, {Kind: store.KindSetting, ID: "cluster"}} {
		r, err := a.node(1).st.Export(ctx, k.Kind, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	target := linkTo{sy: b.node(1).sy, kinds: []store.Kind{store.KindObject}}
	if _, err := target.Push(ctx, recs); !errors.Is(err, peersync.ErrKindNotLinked) {
		t.Fatalf("push with a setting: %v", err)
	}
	if n := b.node(1).appliedCount(); n != 0 {
		t.Fatalf("a refused push applied %d records", n)
	}
	// A Mirror asking for settings through an objects link is refused by
	// the admit check too (the serving side lists only objects).
	if _, err := a.node(1).sy.Mirror(ctx, target, []store.Kind{store.KindObject, store.KindSetting}); !errors.Is(err, peersync.ErrKindNotLinked) {
		t.Fatalf("mirror of settings: %v", err)
	}
}

// Records of a cluster with another masking key are refused.
func TestLinkPushNotAClone(t *testing.T) {
	ctx := t.Context()
	a := newCluster(t, clusterOpts{nodes: 1})
	b := newCluster(t, clusterOpts{nodes: 1})
	a.put(1, store.KindObject, "obj", []byte("key"))
	target := linkTo{sy: b.node(1).sy, kinds: []store.Kind{store.KindObject}}
	if _, err := a.node(1).sy.Mirror(ctx, target, []store.Kind{store.KindObject}); !errors.Is(err, store.ErrBadBox) {
		t.Fatalf("mirror to a non-clone: %v", err)
	}
	if _, err := b.node(1).st.Export(ctx, store.KindObject, "obj"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("non-clone stored it: %v", err)
	}
}

// A record the clone refuses does not hold up the others.
func TestLinkPushRefusesOneRecord(t *testing.T) {
	ctx := t.Context()
	a := newCluster(t, clusterOpts{nodes: 1})
	b := newCluster(t, clusterOpts{nodes: 1, mk: map[uint32][]byte{1: a.mk}})
	a.put(1, store.KindObject, "ok-1", []byte("key"))
	a.put(1, store.KindObject, "refuse-me", []byte("key"))
	a.put(1, store.KindObject, "ok-2", []byte("key"))
	target := linkTo{sy: b.node(1).sy, kinds: []store.Kind{store.KindObject}}
	res, err := a.node(1).sy.Mirror(ctx, target, []store.Kind{store.KindObject})
	if err == nil || !strings.Contains(err.Error(), "refused by the clone") {
		t.Fatalf("mirror: %v", err)
	}
	if res.Behind != 3 || !res.Reached {
		t.Fatalf("result %+v", res)
	}
	for _, id := range []string{"ok-1", "ok-2"} {
		if _, err := b.node(1).st.Get(ctx, store.KindObject, id); err != nil {
			t.Errorf("%s on the clone: %v", id, err)
		}
	}
	if _, err := b.node(1).st.Get(ctx, store.KindObject, "refuse-me"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused record on the clone: %v", err)
	}
}

// orderedLink is a link target that records the order records arrive in.
type orderedLink struct {
	linkTo
	got *[]peersync.Key
}

func (l orderedLink) Push(ctx context.Context, recs []store.Sealed) (int, error) {
	for _, r := range recs {
		*l.got = append(*l.got, peersync.Key{Kind: r.Kind, ID: r.ID})
	}
	return l.linkTo.Push(ctx, recs)
}

// TestMirrorUserDeletionsLast: a round pushes users first and the
// deletions of users last, after the objects: the clone refuses to delete
// a user who still owns keys there, so the deletions of that user's keys
// must arrive before the user's.
func TestMirrorUserDeletionsLast(t *testing.T) {
	ctx := t.Context()
	a := newCluster(t, clusterOpts{nodes: 1})
	b := newCluster(t, clusterOpts{nodes: 1, mk: map[uint32][]byte{1: a.mk}})
	a.put(1, store.KindUser, "bob", []byte("user"))
	a.put(1, store.KindObject, "bobs-key", []byte("key"))
	a.put(1, store.KindUser, "carol", []byte("user"))
	kinds := []store.Kind{store.KindObject, store.KindUser}
	var got []peersync.Key
	target := orderedLink{linkTo{sy: b.node(1).sy, kinds: kinds}, &got}
	if _, err := a.node(1).sy.Mirror(ctx, target, kinds); err != nil {
		t.Fatal(err)
	}
	if _, err := a.node(1).st.Delete(ctx, store.KindObject, "bobs-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.node(1).st.Delete(ctx, store.KindUser, "bob"); err != nil {
		t.Fatal(err)
	}
	a.put(1, store.KindUser, "dave", []byte("user"))
	got = nil
	if _, err := a.node(1).sy.Mirror(ctx, target, kinds); err != nil {
		t.Fatal(err)
	}
	want := []peersync.Key{{Kind: store.KindUser, ID: "dave"}, {Kind: store.KindObject, ID: "bobs-key"}, {Kind: store.KindUser, ID: "bob"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pushed in the order %v, want %v", got, want)
	}
}

// TestMirrorRefusedUserDoesNotHoldUpKeys: a user the clone refuses (its
// role differs there, say) leaves the round's keys going.
func TestMirrorRefusedUserDoesNotHoldUpKeys(t *testing.T) {
	ctx := t.Context()
	a := newCluster(t, clusterOpts{nodes: 1})
	b := newCluster(t, clusterOpts{nodes: 1, mk: map[uint32][]byte{1: a.mk}})
	a.put(1, store.KindUser, "refuse-dora", []byte("user"))
	a.put(1, store.KindObject, "alices-key", []byte("key"))
	kinds := []store.Kind{store.KindObject, store.KindUser}
	_, err := a.node(1).sy.Mirror(ctx, linkTo{sy: b.node(1).sy, kinds: kinds}, kinds)
	if err == nil || !strings.Contains(err.Error(), "refused by the clone") {
		t.Fatalf("mirror: %v", err)
	}
	if _, err := b.node(1).st.Get(ctx, store.KindObject, "alices-key"); err != nil {
		t.Fatalf("the key after a refused user: %v", err)
	}
}
