package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/node"
	"github.com/coffer-hsm/coffer/internal/store"
)

// runHSMUnlockAdmin is the recovery when every admin is locked: on the host
// of a stopped HSM, over its data dir and node key, it unlocks one admin
// (keeping its password) and audits it in that HSM's log. When the HSM runs
// again, the unlock reaches its peers and wins over their locked record (see
// hsm.Device.RecoverAdmin).
func runHSMUnlockAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm unlock-admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the stopped HSM's config file (from coffer hsm init)")
	username := fs.String("username", "", "the admin to unlock")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm unlock-admin --config FILE --username NAME\n\n"+
			"Unlocks an admin that failed logins locked, when no admin is left to reset it.\n"+
			"Stop the HSM first, preferably one that was in sync with its peers; run this on its\n"+
			"host (it needs the data dir and node key); then start the HSM again and log in.\n\n"+
			"Example: coffer hsm unlock-admin --config ./cluster/hsm-1.json --username admin\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *config == "" || *username == "" {
		fs.Usage()
		return errors.New("--config and --username are required")
	}
	f, err := readHSMFile(*config)
	if err != nil {
		return err
	}
	if err := unlockAdmin(ctx, f.DataDir, f.NodeID, f.FIPS, *username); err != nil {
		return fmt.Errorf("hsm unlock-admin: %w", err)
	}
	fmt.Fprintf(stdout, "unlocked admin %q in %s; start the HSM and log in as %s\n", *username, f.DataDir, *username)
	return nil
}

// unlockAdmin opens a stopped node's store and audit log and recovers admin
// name.
func unlockAdmin(ctx context.Context, dir string, nodeID uint32, fips bool, name string) error {
	st, err := store.Open(ctx, store.Config{
		Path: filepath.Join(dir, node.StoreFile), NodeKeyPath: filepath.Join(dir, node.NodeKeyFile), Node: nodeID,
	})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: is the HSM still running? stop it first", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	if !st.HasMaskingKey() {
		return fmt.Errorf("data dir %s holds no masking key: this HSM never joined a cluster", dir)
	}
	users := 0
	if err := st.Scan(ctx, store.KindUser, func(store.Record) error { users++; return nil }); err != nil {
		return err
	}
	if users == 0 {
		// A device over an empty store would create a pre-admin.
		return fmt.Errorf("data dir %s holds no users", dir)
	}
	lg, err := audit.Open(ctx, audit.Config{Path: filepath.Join(dir, node.AuditFile)})
	if err != nil {
		return err
	}
	defer lg.Close()
	dev, err := hsm.New(ctx, hsm.Config{Store: offlineStore{st}, Audit: lg, FIPS: fips})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return dev.RecoverAdmin(ctx, name)
}

// offlineStore is the device's Store over a stopped node's store: writes
// stay local, and reach the peers when the node runs again.
type offlineStore struct{ st *store.Store }

func offlineKind(k hsm.RecordKind) (store.Kind, error) {
	switch k {
	case hsm.RecordObject:
		return store.KindObject, nil
	case hsm.RecordUser:
		return store.KindUser, nil
	case hsm.RecordSetting:
		return store.KindSetting, nil
	}
	return 0, fmt.Errorf("unknown record kind %d", k)
}

func (s offlineStore) Put(ctx context.Context, kind hsm.RecordKind, id string, data []byte) error {
	k, err := offlineKind(kind)
	if err != nil {
		return err
	}
	_, err = s.st.Put(ctx, k, id, data)
	return err
}

func (s offlineStore) Delete(ctx context.Context, kind hsm.RecordKind, id string) error {
	k, err := offlineKind(kind)
	if err != nil {
		return err
	}
	_, err = s.st.Delete(ctx, k, id)
	return err
}

func (s offlineStore) Scan(ctx context.Context, kind hsm.RecordKind, fn func(id string, data []byte) error) error {
	k, err := offlineKind(kind)
	if err != nil {
		return err
	}
	return s.st.Scan(ctx, k, func(r store.Record) error { return fn(r.ID, r.Data) })
}
