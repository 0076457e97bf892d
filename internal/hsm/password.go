package hsm

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordCost sets how expensive password hashing is. The device hashes with
// Argon2id, or with PBKDF2-HMAC-SHA-512 in FIPS mode (Argon2 is not a FIPS
// 140-3 approved algorithm). The zero value means DefaultPasswordCost.
type PasswordCost struct {
	Argon2Time       uint32 // passes over memory
	Argon2MemoryKiB  uint32
	Argon2Threads    uint8 // lanes
	PBKDF2Iterations int
}

// DefaultPasswordCost is the production cost.
//
// Argon2id uses the second recommended option of RFC 9106 §4 (t=3, p=4,
// m=64 MiB): the first option (2 GiB per hash) is out of reach of a small
// node that may serve several logins at once, and this option is what the
// RFC calls uniformly safe for less memory. It is above OWASP's Argon2id
// minimum (19 MiB, t=2, p=1).
//
// PBKDF2-HMAC-SHA-512 uses 600,000 iterations: OWASP's figure for
// PBKDF2-HMAC-SHA-256, and so well above its SHA-512 minimum (210,000).
//
// Each login costs one hash; see BenchmarkLogin for the time on a node.
var DefaultPasswordCost = PasswordCost{
	Argon2Time:       3,
	Argon2MemoryKiB:  64 * 1024,
	Argon2Threads:    4,
	PBKDF2Iterations: 600_000,
}

// Bounds on a cost, from configuration or from a stored hash, so a bad
// setting or record cannot make one login take unbounded time or memory.
const (
	maxArgon2Time       = 64
	maxArgon2MemoryKiB  = 4 << 20 // 4 GiB
	maxPBKDF2Iterations = 100_000_000
)

func (c PasswordCost) validate() error {
	if c == (PasswordCost{}) {
		return nil // the default applies
	}
	switch {
	case c.Argon2Time < 1 || c.Argon2Time > maxArgon2Time:
		return fmt.Errorf("hsm config: Argon2Time %d out of range 1..%d", c.Argon2Time, maxArgon2Time)
	case c.Argon2Threads < 1:
		return errors.New("hsm config: Argon2Threads must be at least 1")
	case c.Argon2MemoryKiB < 8*uint32(c.Argon2Threads) || c.Argon2MemoryKiB > maxArgon2MemoryKiB:
		return fmt.Errorf("hsm config: Argon2MemoryKiB %d out of range %d..%d",
			c.Argon2MemoryKiB, 8*uint32(c.Argon2Threads), maxArgon2MemoryKiB)
	case c.PBKDF2Iterations < 1 || c.PBKDF2Iterations > maxPBKDF2Iterations:
		return fmt.Errorf("hsm config: PBKDF2Iterations %d out of range 1..%d", c.PBKDF2Iterations, maxPBKDF2Iterations)
	}
	return nil
}

// Password hash encoding. The first byte names the algorithm; the
// parameters follow big-endian, then the salt and the hash:
//
//	1 (Argon2id):      time u32 | memory KiB u32 | threads u8 | salt[16] | hash[32]
//	2 (PBKDF2-SHA512): iterations u32 | salt[16] | hash[32]
//
// The values are persisted; zero is invalid.
const (
	pwArgon2id     byte = 1
	pwPBKDF2SHA512 byte = 2

	pwSaltLen = 16
	pwHashLen = 32

	pwArgon2Len = 1 + 4 + 4 + 1 + pwSaltLen + pwHashLen
	pwPBKDF2Len = 1 + 4 + pwSaltLen + pwHashLen
)

var errPasswordHash = errors.New("malformed password hash")

// pwParams is a decoded password hash.
type pwParams struct {
	alg        byte
	cost       PasswordCost // the fields of alg only
	salt, hash []byte
}

// Password rules, as CloudHSM: 7 to 32 characters.
const (
	minPasswordLen = 7
	maxPasswordLen = 32
)

// checkPassword applies the password rules to a new password.
func checkPassword(pw string) error {
	if !utf8.ValidString(pw) {
		return fmt.Errorf("%w: password is not valid UTF-8", ErrPinInvalid)
	}
	if n := utf8.RuneCountInString(pw); n < minPasswordLen || n > maxPasswordLen {
		return fmt.Errorf("%w: password has %d characters, must have %d to %d",
			ErrPinInvalid, n, minPasswordLen, maxPasswordLen)
	}
	return nil
}

// hashPassword hashes pw with a fresh salt: Argon2id normally,
// PBKDF2-HMAC-SHA-512 when fips is set.
func hashPassword(rand io.Reader, cost PasswordCost, fips bool, pw string) ([]byte, error) {
	p := pwParams{alg: pwArgon2id, cost: cost, salt: make([]byte, pwSaltLen)}
	if fips {
		p.alg = pwPBKDF2SHA512
	}
	if _, err := io.ReadFull(rand, p.salt); err != nil {
		return nil, fmt.Errorf("password salt: %w", err)
	}
	h, err := p.derive(pw)
	if err != nil {
		return nil, err
	}
	p.hash = h
	return p.encode(), nil
}

// verifyPassword reports whether pw matches the encoded hash. An error means
// the encoding is malformed, not that the password is wrong.
func verifyPassword(encoded []byte, pw string) (bool, error) {
	p, err := decodePassword(encoded)
	if err != nil {
		return false, err
	}
	got, err := p.derive(pw)
	if err != nil {
		return false, err
	}
	ok := subtle.ConstantTimeCompare(got, p.hash) == 1
	clear(got)
	return ok, nil
}

// burnPassword spends the time of one verification without a stored hash,
// so a login for an unknown user takes as long as one for a known user.
func burnPassword(cost PasswordCost, fips bool, pw string) {
	p := pwParams{alg: pwArgon2id, cost: cost, salt: make([]byte, pwSaltLen)}
	if fips {
		p.alg = pwPBKDF2SHA512
	}
	h, _ := p.derive(pw)
	clear(h)
}

// needsRehash reports whether a hash was made with another algorithm or cost
// than the device now uses (e.g. Argon2id after a switch to FIPS mode).
func needsRehash(encoded []byte, cost PasswordCost, fips bool) bool {
	p, err := decodePassword(encoded)
	if err != nil {
		return false
	}
	if fips {
		return p.alg != pwPBKDF2SHA512 || p.cost.PBKDF2Iterations != cost.PBKDF2Iterations
	}
	return p.alg != pwArgon2id || p.cost.Argon2Time != cost.Argon2Time ||
		p.cost.Argon2MemoryKiB != cost.Argon2MemoryKiB || p.cost.Argon2Threads != cost.Argon2Threads
}

func (p *pwParams) derive(pw string) ([]byte, error) {
	switch p.alg {
	case pwArgon2id:
		return argon2.IDKey([]byte(pw), p.salt, p.cost.Argon2Time, p.cost.Argon2MemoryKiB,
			p.cost.Argon2Threads, pwHashLen), nil
	case pwPBKDF2SHA512:
		h, err := pbkdf2.Key(sha512.New, pw, p.salt, p.cost.PBKDF2Iterations, pwHashLen)
		if err != nil {
			return nil, fmt.Errorf("password hash: %w", err)
		}
		return h, nil
	}
	return nil, fmt.Errorf("%w: unknown algorithm %d", errPasswordHash, p.alg)
}

func (p *pwParams) encode() []byte {
	b := []byte{p.alg}
	switch p.alg {
	case pwArgon2id:
		b = binary.BigEndian.AppendUint32(b, p.cost.Argon2Time)
		b = binary.BigEndian.AppendUint32(b, p.cost.Argon2MemoryKiB)
		b = append(b, p.cost.Argon2Threads)
	case pwPBKDF2SHA512:
		b = binary.BigEndian.AppendUint32(b, uint32(p.cost.PBKDF2Iterations))
	}
	b = append(b, p.salt...)
	return append(b, p.hash...)
}

func decodePassword(b []byte) (pwParams, error) {
	var p pwParams
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty", errPasswordHash)
	}
	p.alg = b[0]
	switch p.alg {
	case pwArgon2id:
		if len(b) != pwArgon2Len {
			return p, fmt.Errorf("%w: Argon2id hash of %d bytes", errPasswordHash, len(b))
		}
		p.cost.Argon2Time = binary.BigEndian.Uint32(b[1:])
		p.cost.Argon2MemoryKiB = binary.BigEndian.Uint32(b[5:])
		p.cost.Argon2Threads = b[9]
		b = b[10:]
		c := p.cost
		if c.Argon2Time < 1 || c.Argon2Time > maxArgon2Time || c.Argon2Threads < 1 ||
			c.Argon2MemoryKiB < 8*uint32(c.Argon2Threads) || c.Argon2MemoryKiB > maxArgon2MemoryKiB {
			return p, fmt.Errorf("%w: Argon2id parameters out of range", errPasswordHash)
		}
	case pwPBKDF2SHA512:
		if len(b) != pwPBKDF2Len {
			return p, fmt.Errorf("%w: PBKDF2 hash of %d bytes", errPasswordHash, len(b))
		}
		n := binary.BigEndian.Uint32(b[1:])
		if n < 1 || n > maxPBKDF2Iterations {
			return p, fmt.Errorf("%w: PBKDF2 iterations out of range", errPasswordHash)
		}
		p.cost.PBKDF2Iterations = int(n)
		b = b[5:]
	default:
		return p, fmt.Errorf("%w: unknown algorithm %d", errPasswordHash, p.alg)
	}
	p.salt, p.hash = b[:pwSaltLen:pwSaltLen], b[pwSaltLen:]
	return p, nil
}

// DefaultMaxConcurrentHashes is how many password hashes a device runs at
// once unless Config.MaxConcurrentHashes says otherwise. At the default cost
// each Argon2id hash holds 64 MiB and already runs 4 lanes in parallel, so two
// at once keep the memory of logins at 128 MiB and still use the cores.
const DefaultMaxConcurrentHashes = 2

// maxConcurrentHashes bounds Config.MaxConcurrentHashes.
const maxConcurrentHashes = 256

// hashSlots bounds how many password hashes run at once: every hash the
// device computes (login, the unknown-user burn, a rehash, a new or changed
// password) takes a slot first. Callers beyond the bound queue, in no
// particular order, until a slot frees or their context ends.
type hashSlots struct {
	slots chan struct{}
	// inside, when set (tests only), runs while a slot is held, around
	// each derivation.
	inside func()
}

func newHashSlots(n int) hashSlots { return hashSlots{slots: make(chan struct{}, n)} }

// run waits for a slot, runs f in it and frees the slot. A caller whose ctx
// ends while it waits gets ctx's error and f does not run.
func (h *hashSlots) run(ctx context.Context, f func()) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: waiting to hash a password: %w", ErrDevice, err)
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting to hash a password: %w", ErrDevice, ctx.Err())
	}
	defer func() { <-h.slots }()
	if h.inside != nil {
		h.inside()
	}
	f()
	return nil
}

// newPasswordHash hashes a new password at the device's cost, in a hash slot.
func (d *Device) newPasswordHash(ctx context.Context, pw string) ([]byte, error) {
	var h []byte
	var err error
	if serr := d.hashes.run(ctx, func() { h, err = hashPassword(d.cfg.Rand, d.cfg.Password, d.cfg.FIPS, pw) }); serr != nil {
		return nil, serr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDevice, err)
	}
	return h, nil
}

// passwordMatches checks pw against an encoded hash, in a hash slot.
func (d *Device) passwordMatches(ctx context.Context, encoded []byte, pw string) (bool, error) {
	var ok bool
	var err error
	if serr := d.hashes.run(ctx, func() { ok, err = verifyPassword(encoded, pw) }); serr != nil {
		return false, serr
	}
	return ok, err
}

// burnLogin spends one verification's work, in a hash slot.
func (d *Device) burnLogin(ctx context.Context, pw string) error {
	return d.hashes.run(ctx, func() { burnPassword(d.cfg.Password, d.cfg.FIPS, pw) })
}
