package hsm

import (
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
