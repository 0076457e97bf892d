package hsm

import (
	"context"
	"fmt"
	"slices"
)

// ShareKey lets another crypto user use a token key. Only the owner shares.
func (d *Device) ShareKey(ctx context.Context, sid SessionID, id ObjectID, user string) error {
	return d.setSharing(ctx, sid, id, user, true)
}

// UnshareKey withdraws a share.
func (d *Device) UnshareKey(ctx context.Context, sid SessionID, id ObjectID, user string) error {
	return d.setSharing(ctx, sid, id, user, false)
}

func (d *Device) setSharing(ctx context.Context, sid SessionID, id ObjectID, user string, share bool) error {
	op := "key.share"
	if !share {
		op = "key.unshare"
	}
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return err
	}
	if err = d.shareTarget(p, user); err == nil {
		err = d.update(ctx, s, p, id, func(o *Object) error {
			// Again under the write lock: the user may have been deleted
			// since (deleteUser withdraws shares under it), and a share
			// landing after that would pass to a new user of the name.
			if err := d.shareTarget(p, user); err != nil {
				return err
			}
			if !o.Token() || !o.isKey() {
				return fmt.Errorf("%w: only token keys are shared", ErrArgumentsBad)
			}
			i, found := slices.BinarySearch(o.shared, user)
			switch {
			case share && !found:
				o.shared = slices.Insert(o.shared, i, user)
			case !share && found:
				o.shared = slices.Delete(o.shared, i, i+1)
			case !share:
				return ErrNotShared
			}
			return nil
		})
	}
	if aerr := d.auditSync(ctx, sid, p, op, id, user, err); aerr != nil && err == nil {
		d.log.Warn("audit", "op", op, "err", aerr)
	}
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	return nil
}

// shareTarget checks that p may share a key with user: another crypto user
// who exists.
func (d *Device) shareTarget(p *principal, user string) error {
	d.mu.RLock()
	u := d.users[user]
	d.mu.RUnlock()
	switch {
	case u == nil:
		return fmt.Errorf("%w: %q", ErrUserNotFound, user)
	case u.Role != RoleCryptoUser || user == p.name:
		return fmt.Errorf("%w: keys are shared with other crypto users", ErrArgumentsBad)
	}
	return nil
}
