package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/coffer-hsm/coffer/internal/node"
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
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg := node.OfflineConfig{DataDir: f.DataDir, NodeID: f.NodeID, Device: node.DeviceConfig{FIPS: f.FIPS}}
	if err := node.RecoverAdmin(ctx, cfg, *username); err != nil {
		return fmt.Errorf("hsm unlock-admin: %w", err)
	}
	fmt.Fprintf(stdout, "unlocked admin %q in %s; start the HSM and log in as %s\n", *username, f.DataDir, *username)
	return nil
}
