package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// ClientTarget runs operations through the Coffer Go client, in one
// logged-in Session that every thread shares (a Session is safe for
// concurrent use; it spreads requests over the HSMs that are up). Session
// keys live on one HSM, as on CloudHSM; token keys on every HSM.
type ClientTarget struct {
	Cluster *client.Cluster
	Session *client.Session
	Name    string // the cluster's id in the configuration, for the report
}

// Describe names the cluster and its HSMs.
func (t *ClientTarget) Describe(ctx context.Context) TargetInfo {
	info := TargetInfo{Kind: "coffer-client"}
	var parts []string
	for _, h := range t.Cluster.ClusterInfo(ctx) {
		ref := HSMRef{Address: h.Address, Up: h.Up}
		if h.Info != nil {
			ref.Version, ref.FIPS = h.Info.Version, h.Info.FIPS
		}
		info.HSMs = append(info.HSMs, ref)
		parts = append(parts, h.Address)
	}
	name := "Coffer cluster"
	if t.Name != "" {
		name += " " + t.Name
	}
	info.Description = fmt.Sprintf("%s through the Go client, %d HSMs (%s)", name, len(parts), strings.Join(parts, ", "))
	return info
}

func clientAttrs(as []attr) []client.Attribute {
	out := make([]client.Attribute, 0, len(as))
	for _, a := range as {
		var v []byte
		switch x := a.val.(type) {
		case bool:
			out = append(out, client.Bool(a.typ, x))
			continue
		case uint64:
			v = binary.LittleEndian.AppendUint64(nil, x) // the HSM's CK_ULONG
		case []byte:
			v = x
		case string:
			v = []byte(x)
		default:
			panic(fmt.Sprintf("attribute %v: value of type %T", a.typ, a.val))
		}
		out = append(out, client.Attribute{Type: a.typ, Value: v})
	}
	return out
}

// generate makes spec's key (pair); it returns every object made and the
// one that operates (the private or secret key).
func (t *ClientTarget) generate(ctx context.Context, spec KeySpec, token bool) (made []client.ObjectID, key client.ObjectID, err error) {
	kt, err := template(spec, token)
	if err != nil {
		return nil, 0, err
	}
	m := client.Mechanism{Type: kt.mech}
	if kt.pub == nil {
		id, err := t.Session.GenerateKey(ctx, m, clientAttrs(kt.priv))
		if err != nil {
			return nil, 0, err
		}
		return []client.ObjectID{id}, id, nil
	}
	pub, priv, err := t.Session.GenerateKeyPair(ctx, m, clientAttrs(kt.pub), clientAttrs(kt.priv))
	if err != nil {
		return nil, 0, err
	}
	return []client.ObjectID{pub, priv}, priv, nil
}

// destroy destroys ids and returns those it could not destroy.
func (t *ClientTarget) destroy(ctx context.Context, ids []client.ObjectID) ([]client.ObjectID, error) {
	var errs []error
	var left []client.ObjectID
	for _, id := range ids {
		if err := t.Session.DestroyObject(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("destroying object %d: %w", id, err))
			left = append(left, id)
		}
	}
	return left, errors.Join(errs...)
}

// Prepare makes op's key.
func (t *ClientTarget) Prepare(ctx context.Context, op Op, tokenKeys bool) (Workload, error) {
	w := &clientWorkload{t: t, op: op, token: op.Keys(tokenKeys) == "token", ivs: newIVSource(), data: make([]byte, op.Data)}
	if op.Kind == KindSign || op.Kind == KindEncrypt {
		made, key, err := t.generate(ctx, op.Key, w.token)
		if err != nil {
			return nil, fmt.Errorf("generating the key: %w", err)
		}
		w.made, w.key = made, key
	}
	return w, nil
}

type clientWorkload struct {
	t     *ClientTarget
	op    Op
	token bool
	ivs   *ivSource
	data  []byte
	made  []client.ObjectID
	key   client.ObjectID
}

func (w *clientWorkload) Worker(_ context.Context, threads int) (Worker, error) {
	return &clientWorker{w: w, limit: backlog(threads)}, nil
}

func (w *clientWorkload) Close(ctx context.Context) error {
	var err error
	w.made, err = w.t.destroy(ctx, w.made)
	return err
}

// backlog bounds the objects a thread's generations keep (a cell's
// threads together keep at most about 16384, well below the client's bound
// on session objects): beyond that it destroys them between two operations
// (untimed, but within the cell's duration, so it lowers ops/s). Short
// cells never get there.
func backlog(threads int) int { return max(64, 16384/max(threads, 1)) }

type clientWorker struct {
	w     *clientWorkload
	mu    sync.Mutex // guards made
	made  []client.ObjectID
	limit int
}

func (k *clientWorker) Do(ctx context.Context) error {
	w := k.w
	switch w.op.Kind {
	case KindSign:
		_, err := w.t.Session.Sign(ctx, w.key, clientMech(w.op, w.ivs.params(w.op)), w.data)
		return err
	case KindEncrypt:
		_, err := w.t.Session.Encrypt(ctx, w.key, clientMech(w.op, w.ivs.params(w.op)), w.data)
		return err
	}
	made, _, err := w.t.generate(ctx, w.op.Key, w.token)
	k.mu.Lock()
	k.made = append(k.made, made...)
	k.mu.Unlock()
	return err
}

// Tidy destroys the objects made so far once there are k.limit.
func (k *clientWorker) Tidy(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.made) < k.limit {
		return nil
	}
	var err error
	k.made, err = k.w.t.destroy(ctx, k.made)
	return err
}

func (k *clientWorker) Close(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var err error
	k.made, err = k.w.t.destroy(ctx, k.made)
	return err
}

func clientMech(op Op, p params) client.Mechanism {
	m := client.Mechanism{Type: op.Mech, IV: p.iv, TagBits: p.tagBits}
	if p.pss {
		m.Hash, m.MGF, m.SaltLen = ck.CKM_SHA256, ck.CKG_MGF1_SHA256, 32
	}
	return m
}
