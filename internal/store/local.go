package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Node-local values: small named values of this node alone (the audit
// log's anchor), never replicated, sealed under the node key with their
// name as associated data, durable before PutLocal returns. They live in the
// meta bucket under localPrefix + name.
const (
	localPrefix = "local/"
	localAD     = "coffer store local v1\x00"
	localBlobV1 = 1
)

func localAssoc(name string) []byte { return append([]byte(localAD), name...) }

// PutLocal stores data as the node-local value name.
func (s *Store) PutLocal(ctx context.Context, name string, data []byte) error {
	if name == "" || len(name) > MaxIDLen || len(data) > MaxDataLen {
		return fmt.Errorf("store: put local %q: %w", name, ErrMalformedRecord)
	}
	s.mu.RLock()
	if s.nodeKey == nil {
		s.mu.RUnlock()
		return ErrClosed
	}
	aead, err := newAEAD(s.nodeKey)
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("store: put local %q: %w", name, err)
	}
	blob := aead.Seal([]byte{localBlobV1}, nil, data, localAssoc(name))
	err = s.commits.do(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(localPrefix+name), blob)
	})
	if err != nil {
		return fmt.Errorf("store: put local %q: %w", name, err)
	}
	return nil
}

// GetLocal returns the node-local value name, ErrNotFound if there is none.
// A value that does not open under the node key is a *CorruptError.
func (s *Store) GetLocal(name string) ([]byte, error) {
	s.mu.RLock()
	if s.nodeKey == nil {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	aead, err := newAEAD(s.nodeKey)
	s.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("store: get local %q: %w", name, err)
	}
	var blob []byte
	err = s.view(func(tx *bolt.Tx) error {
		blob = bytes.Clone(tx.Bucket(bucketMeta).Get([]byte(localPrefix + name)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: get local %q: %w", name, err)
	}
	if blob == nil {
		return nil, fmt.Errorf("store: get local %q: %w", name, ErrNotFound)
	}
	if len(blob) == 0 || blob[0] != localBlobV1 {
		return nil, &CorruptError{ID: name, Err: fmt.Errorf("local value format %d", blob[0])}
	}
	data, err := aead.Open(nil, nil, blob[1:], localAssoc(name))
	if err != nil {
		return nil, &CorruptError{ID: name, Err: fmt.Errorf("local value does not open under the node key: %w", ErrBadBox)}
	}
	return data, nil
}
