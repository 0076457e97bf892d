package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/hsm"
)

// The fault harness's history and model: every operation the load makes is
// recorded with its outcome, and the model says what the cluster must hold
// at the end. An acknowledged write must be there (or, for a deletion, gone);
// a write that failed or whose outcome is unknown may have happened or not,
// but nothing else may appear.

// outcome is what the client was told about one write.
type outcome int

const (
	outNone   outcome = iota // never attempted
	outAcked                 // the call returned success
	outEither                // the call failed or its outcome is unknown: done or not
)

// faultKey is one token key the load tried to make, by its unique label.
type faultKey struct {
	label   string
	id      client.ObjectID // 0 unless the creation was acknowledged
	created outcome
	shared  outcome // shared with faultBob
	deleted outcome
}

// faultUser is one crypto user the load tried to make.
type faultUser struct {
	name      string
	created   outcome
	deleted   outcome
	passwords []string // the last is the newest attempted; acked narrows it to one
}

// faultModel holds the history. Each key and user is changed by one worker
// only (the one that made it), so the order of its writes is that worker's.
type faultModel struct {
	mu    sync.Mutex
	keys  map[string]*faultKey
	users map[string]*faultUser

	ops      atomic.Int64 // operations finished (any outcome)
	counts   map[string]*opCount
	errKinds map[string]int
	examples map[string]string
}

type opCount struct{ ok, failed, unknown int }

func newFaultModel() *faultModel {
	return &faultModel{keys: map[string]*faultKey{}, users: map[string]*faultUser{},
		counts: map[string]*opCount{}, errKinds: map[string]int{}, examples: map[string]string{}}
}

// record counts one finished operation of kind op.
// failedCount is how many op calls failed so far.
func (m *faultModel) failedCount(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.counts[op]; c != nil {
		return c.failed
	}
	return 0
}

func (m *faultModel) record(op string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counts[op]
	if c == nil {
		c = &opCount{}
		m.counts[op] = c
	}
	switch {
	case err == nil:
		c.ok++
	case errors.Is(err, client.ErrOutcomeUnknown), errors.Is(err, context.DeadlineExceeded):
		c.unknown++
	default:
		c.failed++
	}
	if err != nil {
		kind := op + ": " + stormDigitsRE.ReplaceAllString(err.Error(), "N")
		if m.errKinds[kind] == 0 {
			m.examples[kind] = op + ": " + err.Error()
		}
		m.errKinds[kind]++
	}
	m.ops.Add(1)
}

// ownKeys returns the worker's keys whose creation was acknowledged and that
// are not (possibly) deleted.
func (m *faultModel) liveKeys(prefix string) []*faultKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*faultKey
	for _, k := range m.keys {
		if strings.HasPrefix(k.label, prefix) && k.created == outAcked && k.deleted == outNone {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b *faultKey) int { return strings.Compare(a.label, b.label) })
	return out
}

// describe says what the history knows of every key whose label text
// names, for a failure message.
func (m *faultModel) describe(text string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := map[outcome]string{outNone: "none", outAcked: "acknowledged", outEither: "failed or unknown"}
	var out []string
	for _, label := range slices.Sorted(maps.Keys(m.keys)) {
		if k := m.keys[label]; strings.Contains(text, "("+label+")") {
			out = append(out, fmt.Sprintf("%s: created %s, shared %s, destroyed %s", label, names[k.created], names[k.shared], names[k.deleted]))
		}
	}
	return strings.Join(out, "; ")
}

// summary is the figures of the history.
func (m *faultModel) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	var ok, failed, unknown int
	for _, op := range slices.Sorted(maps.Keys(m.counts)) {
		c := m.counts[op]
		ok, failed, unknown = ok+c.ok, failed+c.failed, unknown+c.unknown
		fmt.Fprintf(&b, "  %-16s %6d ok %5d failed %5d unknown\n", op, c.ok, c.failed, c.unknown)
	}
	fmt.Fprintf(&b, "  %-16s %6d ok %5d failed %5d unknown\n", "all", ok, failed, unknown)
	kinds := slices.SortedFunc(maps.Keys(m.errKinds), func(a, b string) int { return m.errKinds[b] - m.errKinds[a] })
	for _, k := range kinds[:min(len(kinds), 15)] {
		fmt.Fprintf(&b, "  %5d× %s\n", m.errKinds[k], m.examples[k])
	}
	return b.String()
}

// faultLoad is the mixed load: crypto-user workers that create (min nodes
// 2), use, share and destroy their own keys and sign with a shared pair, and
// an admin worker that creates, changes and deletes users.
type faultLoad struct {
	m        *faultModel
	alice    *client.Session
	admin    *client.Session
	pub      client.ObjectID // a P-256 pair made before the load
	priv     client.ObjectID
	minNodes int
	opLimit  time.Duration // one operation's deadline
}

const faultBob = "bob" // the crypto user keys are shared with

// run starts the workers; they stop when ctx ends. The returned func
// waits for them.
func (l *faultLoad) run(ctx context.Context, workers int, seed uint64) (wait func()) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { l.cryptoWorker(ctx, w, rand.New(rand.NewPCG(seed, uint64(w)))) })
	}
	wg.Go(func() { l.adminWorker(ctx, rand.New(rand.NewPCG(seed, 1000))) })
	return wg.Wait
}

func (l *faultLoad) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.opLimit)
}

func (l *faultLoad) cryptoWorker(ctx context.Context, w int, r *rand.Rand) {
	prefix := fmt.Sprintf("fk-%d-", w)
	for n := 0; ctx.Err() == nil; n++ {
		op := r.IntN(100)
		live := l.m.liveKeys(prefix)
		switch {
		case op < 30 || len(live) == 0:
			l.create(ctx, fmt.Sprintf("%s%d", prefix, n))
		case op < 60:
			l.use(ctx, live[r.IntN(len(live))], uint64(w)<<32|uint64(n))
		case op < 70:
			l.share(ctx, live[r.IntN(len(live))])
		case op < 78:
			l.destroy(ctx, live[r.IntN(len(live))])
		default:
			l.sign(ctx, fmt.Appendf(nil, "worker %d op %d", w, n))
		}
	}
}

func (l *faultLoad) create(ctx context.Context, label string) {
	k := &faultKey{label: label, created: outEither}
	l.m.mu.Lock()
	l.m.keys[label] = k
	l.m.mu.Unlock()
	octx, cancel := l.opCtx(ctx)
	id, err := l.alice.GenerateKey(octx, mechAESKeyGen, aesTokenTemplate(label), client.MinNodes(l.minNodes))
	cancel()
	if ctx.Err() != nil && err != nil {
		return // cut by the end of the load: outcome unknown, not counted
	}
	if err == nil {
		l.m.mu.Lock()
		k.id, k.created = id, outAcked
		l.m.mu.Unlock()
	}
	l.m.record("create", err)
}

// use encrypts and decrypts with k: an acknowledged key must work.
func (l *faultLoad) use(ctx context.Context, k *faultKey, n uint64) {
	iv := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, n), 0x66)
	msg := []byte("fault harness " + k.label)
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	ct, err := l.alice.Encrypt(octx, k.id, gcmMech(iv), msg)
	if err == nil {
		var pt []byte
		pt, err = l.alice.Decrypt(octx, k.id, gcmMech(iv), ct)
		if err == nil && !bytes.Equal(pt, msg) {
			err = fmt.Errorf("decrypted %q, want %q", pt, msg)
		}
	}
	if ctx.Err() != nil && err != nil {
		return
	}
	l.m.record("use", err)
}

func (l *faultLoad) share(ctx context.Context, k *faultKey) {
	if k.shared != outNone {
		return
	}
	l.m.mu.Lock()
	k.shared = outEither
	l.m.mu.Unlock()
	octx, cancel := l.opCtx(ctx)
	err := l.alice.ShareKey(octx, k.id, faultBob)
	cancel()
	if err == nil {
		l.m.mu.Lock()
		k.shared = outAcked
		l.m.mu.Unlock()
	}
	if ctx.Err() != nil && err != nil {
		return
	}
	l.m.record("share", err)
}

func (l *faultLoad) destroy(ctx context.Context, k *faultKey) {
	l.m.mu.Lock()
	k.deleted = outEither
	l.m.mu.Unlock()
	octx, cancel := l.opCtx(ctx)
	err := l.alice.DestroyObject(octx, k.id)
	cancel()
	if err == nil {
		l.m.mu.Lock()
		k.deleted = outAcked
		l.m.mu.Unlock()
	}
	if ctx.Err() != nil && err != nil {
		return
	}
	l.m.record("destroy", err)
}

func (l *faultLoad) sign(ctx context.Context, msg []byte) {
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	sig, err := l.alice.Sign(octx, l.priv, mechECDSASHA256, msg)
	if err == nil {
		err = l.alice.Verify(octx, l.pub, mechECDSASHA256, msg, sig)
	}
	if ctx.Err() != nil && err != nil {
		return
	}
	l.m.record("sign", err)
}

// adminWorker changes users, one change per 15 operations of the others
// (each hashes a password).
func (l *faultLoad) adminWorker(ctx context.Context, r *rand.Rand) {
	next := int64(0)
	for n := 0; ctx.Err() == nil; n++ {
		for l.m.ops.Load() < next {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		next = l.m.ops.Load() + 15
		l.m.mu.Lock()
		var live []*faultUser
		for _, u := range l.m.users {
			if u.created == outAcked && u.deleted == outNone {
				live = append(live, u)
			}
		}
		l.m.mu.Unlock()
		slices.SortFunc(live, func(a, b *faultUser) int { return strings.Compare(a.name, b.name) })
		op := r.IntN(100)
		switch {
		case op < 50 || len(live) == 0:
			u := &faultUser{name: fmt.Sprintf("fu%d", n), created: outEither, passwords: []string{fmt.Sprintf("fu-password-%d-0", n)}}
			l.m.mu.Lock()
			l.m.users[u.name] = u
			l.m.mu.Unlock()
			l.userOp(ctx, "user create", func(ctx context.Context) error {
				return l.admin.CreateUser(ctx, u.name, "crypto-user", u.passwords[0], nil)
			}, func() { u.created = outAcked })
		case op < 80:
			u := live[r.IntN(len(live))]
			l.m.mu.Lock()
			pw := fmt.Sprintf("%s-password-%d", u.name, n)
			u.passwords = append(u.passwords, pw)
			l.m.mu.Unlock()
			l.userOp(ctx, "user password", func(ctx context.Context) error {
				return l.admin.ChangePassword(ctx, u.name, pw, nil)
			}, func() { u.passwords = []string{pw} })
		default:
			u := live[r.IntN(len(live))]
			l.m.mu.Lock()
			u.deleted = outEither
			l.m.mu.Unlock()
			l.userOp(ctx, "user delete", func(ctx context.Context) error {
				return l.admin.DeleteUser(ctx, u.name, false, nil)
			}, func() { u.deleted = outAcked })
		}
	}
}

func (l *faultLoad) userOp(ctx context.Context, op string, call func(context.Context) error, acked func()) {
	octx, cancel := l.opCtx(ctx)
	err := call(octx)
	cancel()
	if err == nil {
		l.m.mu.Lock()
		acked()
		l.m.mu.Unlock()
	}
	if ctx.Err() != nil && err != nil {
		return
	}
	l.m.record(op, err)
}

// faultView is what one HSM holds at the end, read through that HSM alone.
type faultView struct {
	id      uint32
	alice   *client.Session
	admin   *client.Session
	cl      *client.Cluster
	objects map[client.ObjectID]client.ObjectInfo // every token object
	users   map[string]client.UserInfo
}

// read fills v.objects and v.users.
func (v *faultView) read(ctx context.Context) error {
	ids, err := v.admin.FindObjects(ctx, []client.Attribute{client.Bool(ck.CKA_TOKEN, true)})
	if err != nil {
		return fmt.Errorf("HSM %d: find: %w", v.id, err)
	}
	v.objects = map[client.ObjectID]client.ObjectInfo{}
	for _, id := range ids {
		info, err := v.admin.ObjectInfo(ctx, id)
		if err != nil {
			return fmt.Errorf("HSM %d: object %x: %w", v.id, id, err)
		}
		v.objects[id] = info
	}
	users, err := v.admin.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("HSM %d: users: %w", v.id, err)
	}
	v.users = map[string]client.UserInfo{}
	for _, u := range users {
		v.users[u.Username] = u
	}
	return nil
}

// converged says how two views differ, nil if they hold the same objects
// (with the same label, owner and share list) and users.
func converged(a, b *faultView) error {
	var diffs []string
	for id, ai := range a.objects {
		bi, ok := b.objects[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("object %x (%s) only on HSM %d", id, ai.Label, a.id))
		case ai.Label != bi.Label || ai.Owner != bi.Owner || !slices.Equal(slices.Sorted(slices.Values(ai.SharedWith)), slices.Sorted(slices.Values(bi.SharedWith))):
			diffs = append(diffs, fmt.Sprintf("object %x differs: %+v on HSM %d, %+v on HSM %d", id, ai, a.id, bi, b.id))
		}
	}
	for id, bi := range b.objects {
		if _, ok := a.objects[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("object %x (%s) only on HSM %d", id, bi.Label, b.id))
		}
	}
	for name, au := range a.users {
		bu, ok := b.users[name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("user %s only on HSM %d", name, a.id))
		case au.Role != bu.Role:
			diffs = append(diffs, fmt.Sprintf("user %s is %s on HSM %d, %s on HSM %d", name, au.Role, a.id, bu.Role, b.id))
		}
	}
	for name := range b.users {
		if _, ok := a.users[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("user %s only on HSM %d", name, b.id))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("HSMs %d and %d differ in %d ways: %s", a.id, b.id, len(diffs), strings.Join(diffs[:min(len(diffs), 8)], "; "))
	}
	return nil
}

// check verifies every HSM's view against the model and returns the
// violations: acknowledged writes lost, objects nobody made.
func (m *faultModel) check(ctx context.Context, views []*faultView, owner string, setup map[string]bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var losses []string
	lose := func(format string, args ...any) { losses = append(losses, fmt.Sprintf(format, args...)) }
	for _, v := range views {
		byLabel := map[string][]client.ObjectID{}
		for id, info := range v.objects {
			byLabel[info.Label] = append(byLabel[info.Label], id)
			if !setup[info.Label] && m.keys[info.Label] == nil {
				lose("HSM %d holds object %x labelled %q that the load never made", v.id, id, info.Label)
			}
		}
		for _, label := range slices.Sorted(maps.Keys(m.keys)) {
			k := m.keys[label]
			ids := byLabel[label]
			if len(ids) > 1 {
				lose("HSM %d holds %d objects labelled %q (one creation made duplicates): %x", v.id, len(ids), label, ids)
			}
			if k.created != outAcked {
				continue
			}
			info, present := v.objects[k.id]
			switch {
			case k.deleted == outAcked && present:
				lose("HSM %d still holds key %s (%x), whose destruction was acknowledged", v.id, label, k.id)
			case k.deleted == outNone && !present:
				lose("HSM %d lost key %s (%x), whose creation was acknowledged", v.id, label, k.id)
			case present && (info.Label != label || info.Owner != owner || info.Class != ck.CKO_SECRET_KEY || info.KeyType != ck.CKK_AES):
				lose("HSM %d: key %s (%x) has the wrong attributes: %+v", v.id, label, k.id, info)
			case present && k.shared == outAcked && !slices.Contains(info.SharedWith, faultBob):
				lose("HSM %d: key %s (%x) lost its acknowledged share with %s: %v", v.id, label, k.id, faultBob, info.SharedWith)
			case present && k.shared == outNone && len(info.SharedWith) > 0:
				lose("HSM %d: key %s (%x) is shared with %v though nobody shared it", v.id, label, k.id, info.SharedWith)
			}
			if present && k.deleted == outNone {
				iv := []byte("final check!")
				msg := []byte("usable on HSM " + fmt.Sprint(v.id))
				ct, err := v.alice.Encrypt(ctx, k.id, gcmMech(iv), msg)
				if err == nil {
					var pt []byte
					pt, err = v.alice.Decrypt(ctx, k.id, gcmMech(iv), ct)
					if err == nil && !bytes.Equal(pt, msg) {
						err = errors.New("decrypts to something else")
					}
				}
				if err != nil {
					lose("HSM %d: acknowledged key %s (%x) is not usable: %v", v.id, label, k.id, err)
				}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(m.users)) {
			u := m.users[name]
			info, present := v.users[name]
			switch {
			case u.created != outAcked:
				continue
			case u.deleted == outAcked && present:
				lose("HSM %d still lists user %s, whose deletion was acknowledged", v.id, name)
				continue
			case u.deleted == outNone && !present:
				lose("HSM %d lost user %s, whose creation was acknowledged", v.id, name)
				continue
			case !present:
				continue
			case info.Role != "crypto-user":
				lose("HSM %d: user %s is %s", v.id, name, info.Role)
			}
			if u.deleted != outNone {
				continue
			}
			// The acknowledged password (one candidate), or one of those a
			// failed change may have set: newest first.
			var errs []error
			ok := false
			for _, pw := range slices.Backward(u.passwords) {
				err := loginOnce(ctx, v.cl, "crypto-user", name, pw)
				if err == nil {
					ok = true
					break
				}
				errs = append(errs, err)
			}
			if !ok {
				lose("HSM %d: user %s cannot log in with its acknowledged password (candidates %d): %v", v.id, name, len(u.passwords), errors.Join(errs...))
			}
		}
		if _, ok := v.users[faultBob]; !ok {
			lose("HSM %d lost user %s", v.id, faultBob)
		}
		if _, ok := v.users[hsm.DefaultAdminName]; !ok {
			lose("HSM %d lost the admin", v.id)
		}
	}
	return losses
}
