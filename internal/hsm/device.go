// Package hsm is the HSM device: everything one Coffer HSM does inside its
// process, with no network. It holds PKCS#11 objects (keys, data,
// certificates) with their attribute rules, performs the mechanisms, and
// enforces who may do what: users and roles (admin, crypto user, appliance
// user), key ownership and sharing, M-of-N quorum, per-session login, and
// the cluster's client mTLS settings (trust anchors, enforcement level). It
// records every login, user change and key operation in an audit log and keeps
// token objects and users in a Store.
//
// The device is the only place key material is in the clear. Its API is what a
// network server, a PKCS#11 module and a CLI call: every method takes the
// caller's session, and every refusal is an *Error wrapping one of the Err*
// kinds, each with its PKCS#11 return value.
//
// Package hsm imports no networking and no cgo; it persists through the Store
// interface and audits through the Auditor interface, both defined here.
package hsm

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// RecordKind tells the store what a record holds. Values are persisted.
type RecordKind uint8

const (
	RecordObject  RecordKind = 1
	RecordUser    RecordKind = 2
	RecordSetting RecordKind = 3
)

// Store keeps the device's token objects, users and settings durably. Put and
// Delete return only once the change is durable.
type Store interface {
	Put(ctx context.Context, kind RecordKind, id string, data []byte) error
	Delete(ctx context.Context, kind RecordKind, id string) error
	Scan(ctx context.Context, kind RecordKind, fn func(id string, data []byte) error) error
}

// Auditor records what happens on the device. Append must be cheap (it runs
// on every key use); AppendSync returns once the event is durable.
type Auditor interface {
	Append(ev audit.Event)
	AppendSync(ctx context.Context, ev audit.Event) error
}

// Config is how a Device is built.
type Config struct {
	Store  Store   // required
	Audit  Auditor // required
	Logger *slog.Logger
	Rand   io.Reader        // default crypto/rand
	Now    func() time.Time // default time.Now

	// FIPS restricts the device to FIPS 140-3 approved mechanisms and
	// hashes passwords with PBKDF2-SHA-512 instead of Argon2id.
	FIPS bool
	// MaxLoginFailures locks a user after that many consecutive failed
	// logins (default 5).
	MaxLoginFailures int
	// Password sets the cost of password hashing (default: DefaultPasswordCost).
	Password PasswordCost
	// MaxConcurrentHashes bounds how many password hashes (logins, user
	// creation, password changes) run at once; more wait their turn
	// (default DefaultMaxConcurrentHashes). Memory for logins is this
	// times the Argon2id memory cost.
	MaxConcurrentHashes int
	// MaxObjects caps token plus session objects (default 1<<20).
	MaxObjects int
	// QuorumTokenTTL is how long a quorum token stays valid (default 10 min).
	QuorumTokenTTL time.Duration
}

// Validate reports a missing or out-of-range setting.
func (c *Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("hsm config: Store is required")
	case c.Audit == nil:
		return errors.New("hsm config: Audit is required")
	case c.MaxLoginFailures < 0 || c.MaxLoginFailures > 1000:
		return fmt.Errorf("hsm config: MaxLoginFailures %d out of range 1..1000", c.MaxLoginFailures)
	case c.MaxConcurrentHashes < 0 || c.MaxConcurrentHashes > maxConcurrentHashes:
		return fmt.Errorf("hsm config: MaxConcurrentHashes %d out of range 1..%d", c.MaxConcurrentHashes, maxConcurrentHashes)
	case c.MaxObjects < 0:
		return fmt.Errorf("hsm config: MaxObjects %d is negative", c.MaxObjects)
	}
	return c.Password.validate()
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxLoginFailures == 0 {
		c.MaxLoginFailures = 5
	}
	if c.Password == (PasswordCost{}) {
		c.Password = DefaultPasswordCost
	}
	if c.MaxConcurrentHashes == 0 {
		c.MaxConcurrentHashes = DefaultMaxConcurrentHashes
	}
	if c.MaxObjects == 0 {
		c.MaxObjects = 1 << 20
	}
	if c.QuorumTokenTTL == 0 {
		c.QuorumTokenTTL = 10 * time.Minute
	}
}

// Device is one HSM. It is safe for concurrent use.
type Device struct {
	cfg Config
	log *slog.Logger

	// mu guards objects, trusted, reserved, users, cluster and mtls.
	// Objects and the mtls snapshot are immutable once published; a change
	// replaces the pointer under mu.
	mu      sync.RWMutex
	objects map[ObjectID]*Object
	// trusted indexes the trusted public and secret keys, so that opensTrusted asks
	// one entry instead of scanning objects. Invariant: trusted[k] is the
	// number of objects in objects for which trustedPublic gives k, and no
	// entry is zero. putObject and dropObject keep it (objects.go); every
	// write of objects goes through them, but for CloseSession, which
	// deletes session objects (never trusted: only an admin sets
	// CKA_TRUSTED, and an admin creates no object and sees no session
	// object), and withdrawShares, which replaces an object by a copy that
	// differs only in its sharing list.
	trusted map[keyID]int
	// tokenObjects counts the token objects in objects (putObject and
	// dropObject keep it; withdrawShares' copies are token objects as the
	// objects they replace, and CloseSession drops session objects only).
	tokenObjects int
	reserved     map[ObjectID]struct{} // ids of objects being committed
	users        map[string]*User
	cluster      clusterSettings
	mtls         *ClientTLSPolicy
	links        []ReplicationLink // sorted; replaced, never modified in place

	// writes serializes read-modify-write of existing objects, users and
	// settings (attribute changes, sharing, destruction), so no change is
	// lost; changes to different objects go on side by side
	// (writelocks.go). userMu serializes the writes of user records: a
	// change that writes one takes writes.lockAll, then userMu
	// (lockUserWrites); a login's outcome, which writes only its user's
	// record, takes userMu alone.
	writes writeLocks
	userMu sync.Mutex

	sessMu      sync.RWMutex
	sessions    map[SessionID]*session
	nextSession atomic.Uint64

	quorum quorumTokens

	collect   collectPool // input collected by one-shot operations (operation.go)
	digests   hashPools   // hash-then-sign states to reuse (hashpools.go)
	singleOps sync.Pool   // *operation: single-part calls' (Device.single)
	ops       opCount     // multi-part operations active in all sessions (operation.go)
	hashes    hashSlots
	// failSlot names this device's failure counts in user records (see
	// User): random per start, so no two devices share one and no setting
	// can make them.
	failSlot uint64
}

// New opens the device over cfg.Store: it loads users, settings and token
// objects, and creates the pre-admin on a store that has no users.
func New(ctx context.Context, cfg Config) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := mech.SelfTest(); err != nil {
		return nil, fmt.Errorf("hsm: refusing to start: %w", err)
	}
	d := &Device{
		cfg:      cfg,
		log:      cfg.Logger,
		objects:  map[ObjectID]*Object{},
		trusted:  map[keyID]int{},
		reserved: map[ObjectID]struct{}{},
		users:    map[string]*User{},
		sessions: map[SessionID]*session{},
		cluster:  defaultClusterSettings(),
		mtls:     defaultClientTLSPolicy(),
		hashes:   newHashSlots(cfg.MaxConcurrentHashes),
	}
	d.quorum.tokens = map[string]*quorumToken{}
	var slot [8]byte
	if _, err := io.ReadFull(cfg.Rand, slot[:]); err != nil {
		return nil, fmt.Errorf("hsm: failure slot: %w", err)
	}
	d.failSlot = binary.LittleEndian.Uint64(slot[:])
	if err := d.load(ctx); err != nil {
		return nil, err
	}
	if len(d.users) == 0 {
		if err := d.createPreAdmin(ctx); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *Device) load(ctx context.Context) error {
	err := d.cfg.Store.Scan(ctx, RecordUser, func(id string, data []byte) error {
		u, err := unmarshalUser(data)
		if err != nil {
			return fmt.Errorf("user %q: %w", id, err)
		}
		d.users[u.Name] = u
		return nil
	})
	if err != nil {
		return fmt.Errorf("load users: %w", err)
	}
	err = d.cfg.Store.Scan(ctx, RecordSetting, func(id string, data []byte) error {
		switch id {
		case clusterSettingsID:
			return d.cluster.unmarshal(data)
		case mtlsSettingsID:
			p, err := unmarshalPolicy(data)
			if err != nil {
				return err
			}
			d.mtls = p
		case linksSettingsID:
			l, err := unmarshalLinks(data)
			if err != nil {
				return err
			}
			d.links = l
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load settings: %w", err)
	}
	err = d.cfg.Store.Scan(ctx, RecordObject, func(id string, data []byte) error {
		o, err := unmarshalObject(data)
		if err != nil {
			return fmt.Errorf("object %s: %w", id, err)
		}
		d.putObject(o.id, o)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load objects: %w", err)
	}
	return nil
}

// Reload replaces the device's copy of one record after the store changed
// underneath it (replication from a peer). load reads the record as the store
// holds it now; nil data means it was deleted. load runs under the locks a
// local change of the same record holds from its store write to its
// publication, so a reload never overtakes a newer local write with the older
// record it read; a reload of an object waits for changes to that object
// only.
func (d *Device) Reload(kind RecordKind, id string, load func() ([]byte, error)) error {
	if oid, err := ParseObjectID(id); kind == RecordObject && err == nil {
		defer d.writes.lockObject(oid)()
	} else if kind == RecordUser {
		defer d.lockUserWrites()()
	} else {
		defer d.writes.lockAll()()
	}
	data, err := load()
	if err != nil {
		return err
	}
	defer clear(data)
	if kind == RecordUser && data == nil {
		d.mu.Lock()
		delete(d.users, id)
		d.mu.Unlock()
		d.dropQuorumTokens(id)
		d.logoutEverywhere(id)
		return nil
	}
	if kind == RecordUser {
		u, err := unmarshalUser(data)
		if err != nil {
			return fmt.Errorf("user %q: %w", id, err)
		}
		before := d.user(u.Name)
		u, writeBack := d.mergeUser(u)
		if writeBack {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.storeUser(ctx, u); err != nil {
				return fmt.Errorf("user %q: keeping the merged record: %w", id, err)
			}
		}
		d.setUser(u)
		if before != nil && (u.resetAt > before.resetAt || u.Locked && !before.Locked) {
			// Reset or locked on a peer: as here, the user's logins end.
			d.logoutEverywhere(u.Name)
		}
		d.resetLogins(u)
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch kind {
	case RecordObject:
		oid, err := ParseObjectID(id)
		if err != nil {
			return err
		}
		if data == nil {
			d.dropObject(oid)
			return nil
		}
		o, err := unmarshalObject(data)
		if err != nil {
			return fmt.Errorf("object %s: %w", id, err)
		}
		d.putObject(oid, o)
	case RecordSetting:
		switch {
		case data == nil: // settings are never deleted
		case id == clusterSettingsID:
			return d.cluster.unmarshal(data)
		case id == mtlsSettingsID:
			p, err := unmarshalPolicy(data)
			if err != nil {
				return err
			}
			d.mtls = p
		case id == linksSettingsID:
			l, err := unmarshalLinks(data)
			if err != nil {
				return err
			}
			d.links = l
		}
	}
	return nil
}

// newObjectID returns a random id not in use. The caller holds mu. Random ids are stable across
// nodes and never reused in practice (2^64 space; collisions are checked).
func (d *Device) newObjectID() (ObjectID, error) {
	var b [8]byte
	for {
		if _, err := io.ReadFull(d.cfg.Rand, b[:]); err != nil {
			return 0, fmt.Errorf("object id: %w", err)
		}
		id := ObjectID(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56)
		if id == 0 {
			continue
		}
		_, taken := d.objects[id]
		if _, busy := d.reserved[id]; !taken && !busy {
			return id, nil
		}
	}
}

// lockUserWrites takes the locks of a change that writes user records:
// writes.lockAll, then userMu, in that order everywhere. It returns their
// release.
func (d *Device) lockUserWrites() (unlock func()) {
	unlockAll := d.writes.lockAll()
	d.userMu.Lock()
	return func() {
		d.userMu.Unlock()
		unlockAll()
	}
}
