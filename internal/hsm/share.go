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
	d.mu.RLock()
	u := d.users[user]
	d.mu.RUnlock()
	switch {
	case u == nil:
		err = fmt.Errorf("%w: %q", ErrUserNotFound, user)
	case u.Role != RoleCryptoUser || user == p.name:
		err = fmt.Errorf("%w: keys are shared with other crypto users", ErrArgumentsBad)
	default:
		err = d.update(ctx, s, p, id, func(o *Object) error {
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
