package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultLockTimeout is how long Open waits for another process to release
// the database file when Config.LockTimeout is zero.
const DefaultLockTimeout = time.Second

// Config configures a Store.
type Config struct {
	Path        string           // the bbolt database file; created if missing
	NodeKeyPath string           // 32-byte node key, mode 0600 (see CreateNodeKey)
	Node        uint32           // this node's id, nonzero, unique in the cluster; stamped into versions
	Now         func() time.Time // wall clock for versions; nil means time.Now
	Logger      *slog.Logger     // nil means discard
	LockTimeout time.Duration    // wait for the file lock; zero means DefaultLockTimeout
}

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("Path is empty"))
	}
	if c.NodeKeyPath == "" {
		errs = append(errs, errors.New("NodeKeyPath is empty"))
	}
	if c.Node == 0 {
		errs = append(errs, errors.New("Node is zero"))
	}
	if c.LockTimeout < 0 {
		errs = append(errs, fmt.Errorf("LockTimeout %s is negative", c.LockTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: invalid config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	return c
}
