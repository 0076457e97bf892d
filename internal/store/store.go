package store

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket and key names. They are persisted: never rename.
var (
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format") // store layout version, one byte
	keyNode    = []byte("node")   // node id the store belongs to, big-endian uint32
	keyMK      = []byte("mk")     // masking key sealed under the node key
)

const storeFormat = 1

func bucketName(k Kind) []byte { return []byte("rec" + strconv.Itoa(int(k))) }

// Store is one node's record store. It is safe for concurrent use.
type Store struct {
	path        string
	nodeKeyPath string
	log         *slog.Logger
	db          *bolt.DB
	clock       *Clock
	commits     *committer

	// mu guards nodeKey and keys. keys is nil until a masking key is set and
	// then never replaced, so readers may use the pointer after unlocking.
	mu      sync.RWMutex
	nodeKey []byte // nil once closed
	keys    *keyring

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the store at cfg.Path. It reads the node key, opens
// the masking key if one is set, checks every record header, and moves the
// clock past every stored version.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	nodeKey, err := readNodeKey(cfg.NodeKeyPath)
	if err != nil {
		return nil, err
	}
	db, err := openBolt(cfg.Path, cfg.LockTimeout)
	if err != nil {
		clear(nodeKey)
		return nil, err
	}
	s := &Store{
		path:        cfg.Path,
		nodeKeyPath: cfg.NodeKeyPath,
		log:         cfg.Logger.With("store", cfg.Path),
		db:          db,
		clock:       NewClock(cfg.Node, cfg.Now),
		nodeKey:     nodeKey,
	}
	if err := s.load(cfg.Node); err != nil {
		db.Close()
		clear(nodeKey)
		return nil, err
	}
	s.commits = newCommitter(db)
	return s, nil
}

// openBolt opens the bbolt file, turning bbolt's panics on corrupt files into
// errors that name the path.
func openBolt(path string, timeout time.Duration) (*bolt.DB, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
		// bbolt would silently initialize an empty file as a new database.
		return nil, fmt.Errorf("store: open %s: file is empty (truncated?): %w", path, ErrCorruptDatabase)
	}
	if err := preflight(path, timeout); err != nil {
		return nil, err
	}
	// bbolt may still panic while loading a garbled freelist page. The
	// recovered panic leaves bbolt's mmap behind, and with it the file lock,
	// until the process exits; a node whose store will not open stops anyway.
	var files []*os.File // what bbolt opened, closed if it panics
	opts := &bolt.Options{
		Timeout: timeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			if err == nil {
				files = append(files, f)
			}
			return f, err
		},
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	if err == nil {
		return db, nil
	}
	if db == nil {
		for _, f := range files {
			f.Close() // already closed unless bbolt panicked
		}
	}
	return nil, classifyOpenErr(path, timeout, err)
}

// preflight opens an existing database read-only, without loading its
// freelist, and checks that the file holds every page its metadata claims.
// A truncated file would otherwise make bbolt fault or panic with no handle
// left to unmap the file.
func preflight(path string, timeout time.Duration) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	var db *bolt.DB
	err = guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
		if err != nil {
			return err
		}
		return db.View(func(tx *bolt.Tx) error {
			if tx.Size() > fi.Size() {
				return fmt.Errorf("%w: file is %d bytes, its metadata needs %d (truncated?)",
					ErrCorruptDatabase, fi.Size(), tx.Size())
			}
			return nil
		})
	})
	if db != nil {
		db.Close()
	}
	return classifyOpenErr(path, timeout, err)
}

// classifyOpenErr names the path and says whether an error from bbolt's Open
// means a lock held elsewhere, an I/O problem or a damaged file.
func classifyOpenErr(path string, timeout time.Duration, err error) error {
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolt.ErrTimeout):
		return fmt.Errorf("store: open %s: %w (waited %s)", path, ErrLocked, timeout)
	case errors.Is(err, ErrCorruptDatabase), errors.As(err, &pathErr):
		return fmt.Errorf("store: open %s: %w", path, noSpace(err))
	case errors.Is(noSpace(err), ErrNoSpace):
		// A new database that cannot write its first pages is not corrupt.
		return fmt.Errorf("store: open %s: %w", path, noSpace(err))
	default:
		return fmt.Errorf("store: open %s: %w: %w", path, ErrCorruptDatabase, err)
	}
}

// load prepares the buckets, checks the file belongs to this node, verifies
// every record header, observes the greatest version and opens the masking
// key.
func (s *Store) load(node uint32) error {
	var blob []byte
	err := guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			if err := checkOrPut(meta, keyFormat, []byte{storeFormat}, "store format"); err != nil {
				return err
			}
			if err := checkOrPut(meta, keyNode, binary.BigEndian.AppendUint32(nil, node), "node id"); err != nil {
				return err
			}
			for _, k := range kinds() {
				if _, err := tx.CreateBucketIfNotExists(bucketName(k)); err != nil {
					return err
				}
			}
			if v := meta.Get(keyMK); v != nil {
				blob = bytes.Clone(v)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, noSpace(err))
	}
	if err := s.verify(); err != nil {
		return err
	}
	if blob == nil {
		s.log.Info("store opened without a masking key")
		return nil
	}
	mk, err := openMaskingKey(s.nodeKey, blob)
	switch {
	case errors.Is(err, ErrWrongNodeKey):
		return fmt.Errorf("store: open %s: node key file %s: %w", s.path, s.nodeKeyPath, ErrWrongNodeKey)
	case err != nil:
		return fmt.Errorf("store: open %s: %w: %w", s.path, ErrCorruptDatabase, err)
	}
	defer clear(mk)
	if s.keys, err = newKeyring(mk); err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	s.log.Info("store opened", "mk_id", hex.EncodeToString(s.keys.check[:8]))
	return nil
}

// checkOrPut stores want under key if absent, else requires it to be there.
func checkOrPut(b *bolt.Bucket, key, want []byte, what string) error {
	got := b.Get(key)
	if got == nil {
		return b.Put(key, want)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s is %x, this build/config expects %x", what, got, want)
	}
	return nil
}

// verify reads every record header once: it catches a truncated file before
// a read faults in the mmap, reports corrupt records, and moves the clock past
// the greatest stored version (the wall clock may have gone backwards since).
func (s *Store) verify() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	var live, tombstones, corrupt int
	var newest Version
	err = guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if tx.Size() > fi.Size() {
				return fmt.Errorf("%w: file is %d bytes, its metadata needs %d (truncated?)",
					ErrCorruptDatabase, fi.Size(), tx.Size())
			}
			for _, k := range kinds() {
				err := tx.Bucket(bucketName(k)).ForEach(func(key, raw []byte) error {
					h, err := checkHeader(k, key, raw)
					if err != nil {
						corrupt++
						s.log.Warn("corrupt record", "err", err)
						return nil
					}
					if h.Version.Compare(newest) > 0 {
						newest = h.Version
					}
					if h.Tombstone {
						tombstones++
					} else {
						live++
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	s.clock.Observe(newest)
	s.log.Info("store records checked", "live", live, "tombstones", tombstones, "corrupt", corrupt, "newest", newest.String())
	return nil
}

// HasMaskingKey reports whether a masking key is set.
func (s *Store) HasMaskingKey() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys != nil
}

// SetMaskingKey sets the cluster masking key (32 bytes, generated by the
// caller on the first node, received from a peer or a backup on the others),
// sealed under the node key and durable before it returns. Setting the same
// key again is a no-op; a different one gives ErrMaskingKeyMismatch.
func (s *Store) SetMaskingKey(ctx context.Context, mk []byte) error {
	if len(mk) != keyLen {
		return fmt.Errorf("store: masking key is %d bytes, want %d", len(mk), keyLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodeKey == nil {
		return ErrClosed
	}
	if s.keys != nil {
		if subtle.ConstantTimeCompare(s.keys.mk, mk) == 1 {
			return nil
		}
		return fmt.Errorf("store: set masking key in %s: %w", s.path, ErrMaskingKeyMismatch)
	}
	kr, err := newKeyring(mk)
	if err != nil {
		return fmt.Errorf("store: set masking key: %w", err)
	}
	blob, err := sealMaskingKey(s.nodeKey, mk)
	if err != nil {
		return fmt.Errorf("store: seal masking key: %w", err)
	}
	// A stored key equal to mk (an earlier call's) counts as success.
	// The function below runs in the committer, so it gets its own copies.
	nodeKey, mk := bytes.Clone(s.nodeKey), bytes.Clone(mk)
	var stored, same bool
	err = s.commits.do(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		stored, same = false, false
		if old := meta.Get(keyMK); old != nil {
			stored = true
			if prev, err := openMaskingKey(nodeKey, old); err == nil {
				same = subtle.ConstantTimeCompare(prev, mk) == 1
				clear(prev)
			}
			return nil
		}
		return meta.Put(keyMK, blob)
	})
	if err != nil {
		return fmt.Errorf("store: set masking key: %w", err)
	}
	if stored && !same {
		return fmt.Errorf("store: set masking key in %s: %w", s.path, ErrMaskingKeyMismatch)
	}
	s.keys = kr
	s.log.Info("masking key set", "mk_id", hex.EncodeToString(kr.check[:8]))
	return nil
}

// MaskingKeyCheck returns a fingerprint of the masking key,
// HMAC-SHA256(MK, "coffer mk id"): equal on nodes of one cluster, and
// revealing nothing about the key.
func (s *Store) MaskingKeyCheck() ([]byte, error) {
	k, err := s.keyring()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(k.check), nil
}

// MaskingKey returns a copy of the masking key, for handing it to a joining
// node of the same cluster wrapped for that node alone (the node's Clone
// exchange) and for deriving the audit log's key. The caller zeroes it
// after use.
func (s *Store) MaskingKey() ([]byte, error) {
	k, err := s.keyring()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(k.mk), nil
}

func (s *Store) keyring() (*keyring, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.nodeKey == nil {
		return nil, ErrClosed
	}
	if s.keys == nil {
		return nil, fmt.Errorf("store %s: %w", s.path, ErrNoMaskingKey)
	}
	return s.keys, nil
}

// Close waits for queued writes to commit, closes the database and zeroes
// the keys it holds. Later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.commits.close()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store: close %s: %w", s.path, err)
		}
		s.mu.Lock()
		clear(s.nodeKey)
		s.nodeKey = nil
		s.keys.wipe()
		s.mu.Unlock()
	})
	return s.closeErr
}

// view runs a read transaction, turning panics and faults into errors.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	err := guard(func() error { return s.db.View(fn) })
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
