package hsm

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// QuorumService is a group of operations a quorum (M of N admins) guards.
// Values are persisted.
type QuorumService uint8

const (
	// QuorumUserManagement guards creating and deleting users and changing
	// another user's password.
	QuorumUserManagement QuorumService = 1
	// QuorumQuorumManagement guards changing a quorum value.
	QuorumQuorumManagement QuorumService = 2
)

func (q QuorumService) String() string {
	switch q {
	case QuorumUserManagement:
		return "user-management"
	case QuorumQuorumManagement:
		return "quorum-management"
	}
	return "invalid-quorum-service"
}

func (q QuorumService) valid() bool {
	return q == QuorumUserManagement || q == QuorumQuorumManagement
}

// maxQuorum is the largest quorum value M, as on CloudHSM.
const maxQuorum = 8

// Approval is one admin's signature over a quorum token's Data: RSA PKCS #1
// v1.5 with SHA-256, or ECDSA (ASN.1 DER) with SHA-256, by the key the admin
// registered with RegisterQuorumKey.
type Approval struct {
	Username  string
	Signature []byte
}

// Approvals accompany an operation a quorum guards: the token the approvers
// signed and their signatures. The acting admin's own approval counts toward
// M only if it is among the signatures.
type Approvals struct {
	Token      string
	Signatures []Approval
}

// QuorumTokenInfo is an outstanding quorum token: what approvers sign (Data),
// for which service, issued to whom, and until when it is valid.
type QuorumTokenInfo struct {
	ID      string
	Data    []byte
	Service QuorumService
	Issuer  string
	Expires time.Time
}

// quorumTokens holds the outstanding quorum tokens. They live in memory on
// the HSM that issued them: the operation they approve must run there. mu
// guards tokens; a *quorumToken in the map is never changed.
type quorumTokens struct {
	mu     sync.Mutex
	tokens map[string]*quorumToken
}

type quorumToken struct {
	info QuorumTokenInfo
}

// maxQuorumTokens bounds the outstanding tokens, so admins cannot exhaust
// memory; expired tokens are dropped first.
const maxQuorumTokens = 1024

// tokenMagic starts a token's Data, so a signature over it cannot be taken
// for a signature over anything else. Data is, in order:
//
//	tokenMagic | service u8 | id (u8 length, bytes) | issuer (u8 length, bytes) |
//	expiry (unix nanoseconds, i64 big-endian) | nonce[32]
const tokenMagic = "coffer quorum token v1\x00"

func tokenData(id string, service QuorumService, issuer string, expires time.Time, nonce []byte) []byte {
	b := append([]byte(tokenMagic), byte(service))
	b = append(append(b, byte(len(id))), id...)
	b = append(append(b, byte(len(issuer))), issuer...)
	b = binary.BigEndian.AppendUint64(b, uint64(expires.UnixNano()))
	return append(b, nonce...)
}

// RegisterQuorumKey sets the session's admin's quorum public key (SPKI DER;
// RSA of at least 2048 bits, or ECDSA on P-256 or P-384), replacing any
// earlier one.
func (d *Device) RegisterQuorumKey(ctx context.Context, sid SessionID, spkiDER []byte) error {
	p, err := d.registerQuorumKey(ctx, sid, spkiDER)
	return d.finish(ctx, sid, p, "quorum.register-key", "", err)
}

func (d *Device) registerQuorumKey(ctx context.Context, sid SessionID, spki []byte) (*principal, error) {
	p, err := d.admin(sid)
	if err != nil {
		return p, err
	}
	if len(spki) > maxQuorumKeyLen {
		return p, fmt.Errorf("%w: quorum key of %d bytes", ErrArgumentsBad, len(spki))
	}
	if _, err := parseQuorumKey(spki); err != nil {
		return p, err
	}
	defer d.lockUserWrites()()
	u := d.user(p.name)
	if u == nil {
		return p, ErrUserNotFound
	}
	n := u.clone()
	n.QuorumKey = bytes.Clone(spki)
	return p, d.putUser(ctx, n)
}

func parseQuorumKey(spki []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("%w: quorum key: %w", ErrArgumentsBad, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return nil, fmt.Errorf("%w: quorum key: RSA-%d; need 2048 to 8192 bits", ErrArgumentsBad, n)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: quorum key: curve %s; need P-256 or P-384", ErrArgumentsBad, k.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("%w: quorum key: %T; need RSA or ECDSA", ErrArgumentsBad, pub)
	}
	return pub, nil
}

// QuorumToken issues a token for service to the session's admin. Approvers
// sign its Data; the admin then passes the token and signatures to the
// operation, on this HSM, before it expires (Config.QuorumTokenTTL).
func (d *Device) QuorumToken(ctx context.Context, sid SessionID, service QuorumService) (QuorumTokenInfo, error) {
	info, p, err := d.quorumToken(sid, service)
	err = d.finish(ctx, sid, p, "quorum.token", service.String()+" "+info.ID, err)
	if err != nil {
		return QuorumTokenInfo{}, err
	}
	return info, nil
}

func (d *Device) quorumToken(sid SessionID, service QuorumService) (QuorumTokenInfo, *principal, error) {
	p, err := d.admin(sid)
	if err != nil {
		return QuorumTokenInfo{}, p, err
	}
	if !service.valid() {
		return QuorumTokenInfo{}, p, fmt.Errorf("%w: quorum service %d", ErrArgumentsBad, service)
	}
	var rnd [16 + 32]byte // id, nonce
	if _, err := io.ReadFull(d.cfg.Rand, rnd[:]); err != nil {
		return QuorumTokenInfo{}, p, fmt.Errorf("%w: quorum token: %w", ErrDevice, err)
	}
	now := d.cfg.Now()
	info := QuorumTokenInfo{
		ID: hex.EncodeToString(rnd[:16]), Service: service, Issuer: p.name,
		Expires: now.Add(d.cfg.QuorumTokenTTL),
	}
	info.Data = tokenData(info.ID, service, p.name, info.Expires, rnd[16:])

	q := &d.quorum
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pruneLocked(now)
	if len(q.tokens) >= maxQuorumTokens {
		return QuorumTokenInfo{}, p, fmt.Errorf("%w: %d quorum tokens outstanding", ErrDeviceMemory, len(q.tokens))
	}
	q.tokens[info.ID] = &quorumToken{info: info}
	info.Data = bytes.Clone(info.Data)
	return info, p, nil
}

func (q *quorumTokens) pruneLocked(now time.Time) {
	for id, t := range q.tokens {
		if !now.Before(t.info.Expires) {
			delete(q.tokens, id)
		}
	}
}

// ListQuorumTokens lists the unexpired tokens, soonest expiry first, to an
// admin.
func (d *Device) ListQuorumTokens(sid SessionID) ([]QuorumTokenInfo, error) {
	if _, err := d.admin(sid); err != nil {
		return nil, &Error{Op: "quorum.token-list", Err: err}
	}
	q := &d.quorum
	q.mu.Lock()
	q.pruneLocked(d.cfg.Now())
	out := make([]QuorumTokenInfo, 0, len(q.tokens))
	for _, t := range q.tokens {
		info := t.info
		info.Data = bytes.Clone(info.Data)
		out = append(out, info)
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b QuorumTokenInfo) int {
		return cmp.Or(a.Expires.Compare(b.Expires), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteQuorumToken withdraws a token; any admin may.
func (d *Device) DeleteQuorumToken(sid SessionID, id string) error {
	p, err := d.admin(sid)
	if err == nil {
		q := &d.quorum
		q.mu.Lock()
		q.pruneLocked(d.cfg.Now())
		if _, ok := q.tokens[id]; ok {
			delete(q.tokens, id)
		} else {
			err = ErrTokenExpired
		}
		q.mu.Unlock()
	}
	if err != nil {
		err = &Error{Op: "quorum.token-delete", Err: err}
	}
	d.audit(sid, p, "quorum.token-delete", 0, id, err)
	return err
}

// dropQuorumTokens withdraws the tokens issued to a deleted user.
func (d *Device) dropQuorumTokens(issuer string) {
	q := &d.quorum
	q.mu.Lock()
	defer q.mu.Unlock()
	for id, t := range q.tokens {
		if t.info.Issuer == issuer {
			delete(q.tokens, id)
		}
	}
}

// SetQuorumValue sets M for service, 1 to 8. It is guarded by the
// quorum-management quorum, and refuses to raise M above the number of
// admins - 2 unless force is set (lowering M is always allowed). Lowering a
// service's M also needs that service's own current quorum: the
// quorum-management token must carry max(M of quorum management, current M
// of service) approvals, so no smaller group of admins than the one a
// service demands can weaken it.
func (d *Device) SetQuorumValue(ctx context.Context, sid SessionID, service QuorumService, m int, force bool, ap Approvals) error {
	p, target, err := d.setQuorumValue(ctx, sid, service, m, force, ap)
	return d.finish(ctx, sid, p, "quorum.set", target, err)
}

func (d *Device) setQuorumValue(ctx context.Context, sid SessionID, service QuorumService, m int, force bool, ap Approvals) (*principal, string, error) {
	target := fmt.Sprintf("%s=%d", service, m)
	p, err := d.admin(sid)
	if err != nil {
		return p, target, err
	}
	if !service.valid() {
		return p, target, fmt.Errorf("%w: quorum service %d", ErrArgumentsBad, service)
	}
	if m < 1 || m > maxQuorum {
		return p, target, fmt.Errorf("%w: %d; must be 1 to %d", ErrQuorumValue, m, maxQuorum)
	}
	defer d.writes.lockAll()()
	c := d.settings()
	// Only raising M can strand the cluster; lowering it is always allowed.
	if n := d.adminCount(); n < m+2 && m > c.quorum(service) {
		if !force {
			return p, target, fmt.Errorf("%w: %d admins; quorum value %d needs %d", ErrLastAdmins, n, m, m+2)
		}
		target += fmt.Sprintf(" (forced: %d admins)", n)
	}
	need := c.quorum(QuorumQuorumManagement)
	if cur := c.quorum(service); m < cur {
		need = max(need, cur)
	}
	spend, err := d.approveN(ctx, QuorumQuorumManagement, need, p, ap)
	if err != nil {
		return p, target, err
	}
	c.setQuorum(service, m)
	if err := d.putSettings(ctx, c); err != nil {
		return p, target, err
	}
	spend()
	return p, target, nil
}

// QuorumValues returns M for each service, to any logged-in session.
func (d *Device) QuorumValues(sid SessionID) (map[QuorumService]int, error) {
	_, p, err := d.whoami(sid)
	if err == nil && p == nil {
		err = ErrNotLoggedIn
	}
	if err != nil {
		return nil, &Error{Op: "quorum.values", Err: err}
	}
	c := d.settings()
	return map[QuorumService]int{
		QuorumUserManagement:   c.QuorumUserMgmt,
		QuorumQuorumManagement: c.QuorumQuorumMgmt,
	}, nil
}

// approve checks quorum and returns spend, which consumes the token: call it
// once the approved operation has succeeded. The caller holds d.writes.lockAll,
// so a token approves one operation only.
func (d *Device) approve(ctx context.Context, service QuorumService, actor *principal, ap Approvals) (spend func(), err error) {
	return d.approveN(ctx, service, d.settings().quorum(service), actor, ap)
}

// approveN is approve with m approvals needed on a token for service.
func (d *Device) approveN(ctx context.Context, service QuorumService, m int, actor *principal, ap Approvals) (spend func(), err error) {
	used, err := d.verifyQuorumN(ctx, service, m, actor, ap)
	if err != nil {
		return nil, err
	}
	if !used {
		return func() {}, nil
	}
	return func() {
		d.quorum.mu.Lock()
		delete(d.quorum.tokens, ap.Token)
		d.quorum.mu.Unlock()
	}, nil
}

// verifyQuorumN reports whether ap approves an operation of service by
// actor, m approvals needed. With m = 1 the acting admin suffices.
// Otherwise it needs m valid approvals by distinct admins with registered
// quorum keys, over an unexpired token issued to actor for service. used
// reports whether the token was needed.
func (d *Device) verifyQuorumN(ctx context.Context, service QuorumService, m int, actor *principal, ap Approvals) (used bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if m <= 1 {
		return false, nil
	}
	if ap.Token == "" && len(ap.Signatures) == 0 {
		return false, &ApprovalsShortError{Needed: m, Given: 0}
	}
	now := d.cfg.Now()
	d.quorum.mu.Lock()
	t := d.quorum.tokens[ap.Token]
	d.quorum.mu.Unlock()
	switch {
	case t == nil:
		return false, fmt.Errorf("%w: no token %q", ErrTokenExpired, ap.Token)
	case !now.Before(t.info.Expires):
		return false, fmt.Errorf("%w: token %s expired at %s", ErrTokenExpired, t.info.ID, t.info.Expires.Format(time.RFC3339))
	case t.info.Service != service:
		return false, fmt.Errorf("%w: token %s is for %s, not %s", ErrTokenExpired, t.info.ID, t.info.Service, service)
	case t.info.Issuer != actor.name:
		return false, fmt.Errorf("%w: token %s was issued to another admin", ErrTokenExpired, t.info.ID)
	}
	seen := make(map[string]bool, len(ap.Signatures))
	for _, a := range ap.Signatures {
		if seen[a.Username] {
			return false, fmt.Errorf("%w: two approvals from %q", ErrQuorumInvalid, a.Username)
		}
		seen[a.Username] = true
		u := d.user(a.Username)
		switch {
		case u == nil || u.Role != RoleAdmin:
			return false, fmt.Errorf("%w: approver %q is not an admin", ErrQuorumInvalid, a.Username)
		case u.Locked:
			return false, fmt.Errorf("%w: approver %q is locked", ErrQuorumInvalid, a.Username)
		case u.QuorumKey == nil:
			return false, fmt.Errorf("%w: approver %q has no quorum key", ErrQuorumInvalid, a.Username)
		}
		if err := verifyApproval(u.QuorumKey, t.info.Data, a.Signature); err != nil {
			return false, fmt.Errorf("%w: approval from %q: %v", ErrQuorumInvalid, a.Username, err)
		}
	}
	if len(seen) < m {
		return false, &ApprovalsShortError{Needed: m, Given: len(seen)}
	}
	return true, nil
}

var errBadApproval = errors.New("signature does not verify")

func verifyApproval(spki, data, sig []byte) error {
	pub, err := parseQuorumKey(spki)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(data)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) != nil {
			return errBadApproval
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest[:], sig) {
			return errBadApproval
		}
	}
	return nil
}
