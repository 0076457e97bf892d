package hsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Idempotent creation. A client sends one creation call (generate, generate
// pair, create, import, unwrap, derive) with a random token and the number of
// this send (attempt 1, 2, ...), so that it can resend the call to another
// HSM when the first one died or went silent without answering. Then:
//
//   - the token objects of attempt a get ids fixed by (owner, token, a,
//     class) and record the token and a (made);
//   - of the groups of objects one token made (one group per attempt), the
//     one of the highest attempt wins on every HSM and the others are
//     destroyed (SettleCreation), whenever a group is made here or a
//     replicated record of one arrives.
//
// The client takes only the answer of its latest send, and sends no more
// after it, so the group it was told about is the one of the highest attempt
// there is: it wins everywhere, whole, with its own key material, and what
// loses was never acknowledged. Nothing about a group ever changes, so no
// HSM can see a stale order and destroy the winner. (A resend does not
// return what an earlier send made, even where that is held: it would have
// to raise the old group's attempt, a change that can race, under
// last-writer-wins, with another HSM destroying that group as a loser.)

// MaxCreationAttempts bounds the sends of one creation call.
const MaxCreationAttempts = 8

// Bounds of a creation token.
const (
	MinCreationToken = 16
	MaxCreationToken = 64
)

// creationClasses are the classes a creation can make, one id each per
// (owner, token, attempt).
var creationClasses = []ck.ObjectClass{ck.CKO_DATA, ck.CKO_CERTIFICATE, ck.CKO_PUBLIC_KEY, ck.CKO_PRIVATE_KEY, ck.CKO_SECRET_KEY}

// Creation names one creation call and which send of it this is.
type Creation struct {
	Token   []byte
	Attempt uint32
}

// Validate reports a token or attempt out of bounds.
func (c Creation) Validate() error {
	switch {
	case len(c.Token) < MinCreationToken || len(c.Token) > MaxCreationToken:
		return fmt.Errorf("%w: idempotency token of %d bytes, want %d..%d", ErrArgumentsBad, len(c.Token), MinCreationToken, MaxCreationToken)
	case c.Attempt < 1 || c.Attempt > MaxCreationAttempts:
		return fmt.Errorf("%w: creation attempt %d, want 1..%d", ErrArgumentsBad, c.Attempt, MaxCreationAttempts)
	}
	return nil
}

type creationCtxKey struct{}

// WithCreation returns ctx carrying c: the token objects a creation method
// of the device makes under it get the ids and the mark of c.
func WithCreation(ctx context.Context, c Creation) context.Context {
	return context.WithValue(ctx, creationCtxKey{}, c)
}

func creationFrom(ctx context.Context) (Creation, bool) {
	c, ok := ctx.Value(creationCtxKey{}).(Creation)
	return c, ok
}

// creationMark is what a token object made by an idempotent creation
// records (under tagMade). It never changes.
type creationMark struct {
	token []byte
	made  uint32 // the attempt that made it; fixes its id
}

func (m *creationMark) marshal() []byte {
	return append(binary.BigEndian.AppendUint32(nil, m.made), m.token...)
}

func unmarshalCreationMark(b []byte) (*creationMark, error) {
	if len(b) < 4+MinCreationToken || len(b) > 4+MaxCreationToken {
		return nil, errors.New("creation mark: bad length")
	}
	m := &creationMark{made: binary.BigEndian.Uint32(b), token: bytes.Clone(b[4:])}
	if m.made < 1 || m.made > MaxCreationAttempts {
		return nil, fmt.Errorf("creation mark: attempt %d", m.made)
	}
	return m, nil
}

// creationObjectID is the id of the object of class that attempt made of the
// owner's creation token.
func creationObjectID(owner string, token []byte, attempt uint32, class ck.ObjectClass) ObjectID {
	var buf [160]byte // the whole input, on the stack for usual owners and tokens
	b := append(buf[:0], "coffer creation object id\x00"...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(owner)))
	b = append(b, owner...)
	b = append(b, byte(len(token)))
	b = append(b, token...)
	b = binary.BigEndian.AppendUint32(b, attempt)
	b = binary.BigEndian.AppendUint64(b, uint64(class))
	sum := sha256.Sum256(b)
	if id := binary.BigEndian.Uint64(sum[:]); id != 0 {
		return ObjectID(id)
	}
	return ObjectID(binary.BigEndian.Uint64(sum[8:]) | 1)
}

// allocObjectID picks the id of a new object: fixed by the creation ctx
// carries for a token object, random otherwise. The caller holds mu.
func (d *Device) allocObjectID(ctx context.Context, p *principal, o *Object) (ObjectID, error) {
	c, ok := creationFrom(ctx)
	if !ok || !o.Token() {
		return d.newObjectID()
	}
	if err := c.Validate(); err != nil { // a mark out of bounds would not load again
		return 0, err
	}
	id := creationObjectID(p.name, c.Token, c.Attempt, o.class)
	_, taken := d.objects[id]
	if _, busy := d.reserved[id]; taken || busy {
		return 0, fmt.Errorf("%w: attempt %d of this creation is made already", ErrArgumentsBad, c.Attempt)
	}
	o.made = &creationMark{token: bytes.Clone(c.Token), made: c.Attempt}
	return id, nil
}

// creationGroups lists, by attempt, the objects of owner's token that this
// device holds, the latest attempt's first. The caller holds mu.
func (d *Device) creationGroups(owner string, token []byte) [][]*Object {
	var groups [][]*Object
	for a := uint32(MaxCreationAttempts); a >= 1; a-- {
		var g []*Object
		for _, class := range creationClasses {
			o := d.objects[creationObjectID(owner, token, a, class)]
			if o == nil || o.made == nil || o.owner != owner || o.made.made != a || !bytes.Equal(o.made.token, token) {
				continue
			}
			g = append(g, o)
		}
		if len(g) > 0 {
			groups = append(groups, g)
		}
	}
	return groups
}

// creationGroupsOf is creationGroups of the creation that made o.
func (d *Device) creationGroupsOf(o *Object) [][]*Object {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.creationGroups(o.owner, o.made.token)
}

// SettleCreation keeps, of the objects that the sends of the creation that
// made object id made, only those of the latest send (see the top of this
// file), destroying the others that mayDestroy lets go (a non-destroyable
// or trusted one stays, a duplicate). It does nothing for an object no
// idempotent creation made.
func (d *Device) SettleCreation(ctx context.Context, id ObjectID) error {
	d.mu.RLock()
	o := d.objects[id]
	d.mu.RUnlock()
	if o == nil || o.made == nil {
		// Most records (every one a peer delivers runs this) come from no
		// resent creation: done without taking the write locks.
		return nil
	}
	if len(d.creationGroupsOf(o)) < 2 {
		// One group: nothing to settle (every creation that was not
		// resent), done without the write lock. A group that arrives
		// later settles when it does.
		return nil
	}
	defer d.writes.lockAll()() // as every writer of existing objects
	d.mu.RLock()
	o = d.objects[id]
	if o == nil || o.made == nil {
		d.mu.RUnlock()
		return nil
	}
	groups := d.creationGroups(o.owner, o.made.token)
	d.mu.RUnlock()
	var errs []error
	for _, g := range groups[1:] {
		for _, lost := range g {
			if err := mayDestroy(lost); err != nil {
				// Kept: a duplicate, rather than a way around the rule.
				d.log.Info("a resent creation's earlier object is kept", "object", lost.id, "reason", err)
				continue
			}
			if err := d.cfg.Store.Delete(ctx, RecordObject, lost.id.String()); err != nil {
				errs = append(errs, fmt.Errorf("%w: store: %w", ErrDevice, err))
				continue
			}
			d.mu.Lock()
			d.dropObject(lost.id) // keeps the trust index whole
			d.mu.Unlock()
			d.audit(0, &principal{name: lost.owner, role: RoleCryptoUser}, "key.deduplicate", lost.id,
				fmt.Sprintf("made by attempt %d of a resent creation; attempt %d's is kept", lost.made.made, groups[0][0].made.made), nil)
		}
	}
	return errors.Join(errs...)
}
