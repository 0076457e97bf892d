package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/node"
	"github.com/coffer-hsm/coffer/internal/pki"
)

// runHSMRun runs one HSM node in the foreground until interrupted.
func runHSMRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the HSM's config file (from coffer hsm init)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm run --config FILE\n\nExample: coffer hsm run --config ./cluster/hsm-1.json\n\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *config == "" {
		fs.Usage()
		return errors.New("--config is required")
	}
	f, err := readHSMFile(*config)
	if err != nil {
		return err
	}
	if f.FIPS {
		if err := ensureFIPSModule(cryptobackend.Current(), os.Environ(), stderr, execSelf); err != nil {
			return err
		}
	}
	cfg, err := nodeConfig(f, *config, time.Now)
	if err != nil {
		return fmt.Errorf("%s: %w", *config, err)
	}
	cfg.Logger = newLogger(stderr).With("hsm", f.HSMID)
	cfg.Version = version
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.New(ctx, cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("HSM listening", "address", n.Addr(), "metrics", n.MetricsAddr())
	return n.Run(ctx)
}

// nodeConfig turns an HSM's config file into the node's Config: its TLS
// identity under the cluster certificate, and how it recognizes its peers.
// A node of the cluster that the file did not list when the node started
// (an HSM added since) is looked up again in the file at path, so it can
// clone the masking key and synchronize.
func nodeConfig(f *hsmFile, path string, now func() time.Time) (node.Config, error) {
	id, err := loadIdentity(f, now)
	if err != nil {
		return node.Config{}, err
	}
	server, err := pki.NodeServerConfig(id.cert, id.trust)
	if err != nil {
		return node.Config{}, err
	}
	mk, err := node.ParseMasterKeySource(f.MaskingKey)
	if err != nil {
		return node.Config{}, err
	}
	limits, err := f.limits()
	if err != nil {
		return node.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	cost, err := checkTestPasswordCost(f.TestPasswordCost, runningTests)
	if err != nil {
		return node.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	var peers []node.PeerAddr
	for _, p := range f.Peers {
		peers = append(peers, node.PeerAddr{ID: p.ID, Addr: p.Address})
	}
	known := newPeerTable(f.Peers)
	authorize := func(ctx context.Context) (uint32, error) {
		pr, ok := peer.FromContext(ctx)
		if !ok {
			return 0, errors.New("no peer")
		}
		info, ok := pr.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return 0, errors.New("not a TLS connection")
		}
		who, ok := pki.PeerNode(info.State)
		if !ok {
			return 0, errors.New("no node certificate")
		}
		if who.ClusterID != f.ClusterID {
			return 0, fmt.Errorf("%s of %s is not a peer of this HSM", who.HsmID, who.ClusterID)
		}
		nid, ok := known.lookup(who.HsmID, path)
		if !ok {
			return 0, fmt.Errorf("%s of %s is not a peer of this HSM", who.HsmID, who.ClusterID)
		}
		return nid, nil
	}
	return node.Config{
		DataDir:       f.DataDir,
		Listen:        f.Listen,
		MetricsListen: f.MetricsListen,
		NodeID:        f.NodeID,
		ClusterID:     f.ClusterID,
		HSMID:         f.HSMID,
		ServerTLS:     server,
		PeerTLS: func(host string) (*tls.Config, error) {
			return pki.NodeClientConfig(id.cert, id.trust, host)
		},
		// Replication links: a linked clone's HSMs are checked against the
		// anchor and cluster id its link names, as peers are against ours
		// (linkTrusts).
		LinkTLS: func(host string, anchor *x509.Certificate, clusterID string) (*tls.Config, error) {
			return pki.NodeClientConfigAny(id.cert, linkTrusts(id.cluster, anchor, clusterID, now), host)
		},
		VerifyLinkedNode: func(chain []*x509.Certificate, anchor *x509.Certificate, clusterID string) error {
			_, err := pki.VerifyNodeAny(linkTrusts(id.cluster, anchor, clusterID, now), chain, x509.ExtKeyUsageClientAuth, "")
			return err
		},
		Peers:         peers,
		MasterKey:     mk,
		AuthorizePeer: authorize,
		BackupKeyPath: f.BackupKey,
		RestoreBlob:   f.RestoreBlob,
		// The backup id a restore's blob must be bound to.
		RestoreBackupID: f.RestoreBackupID,
		Device:          node.DeviceConfig{FIPS: f.FIPS, Password: cost},
		Limits:          limits,
		Now:             now,
	}, nil
}

// linkTrusts is how a node whose cluster certificates are own verifies an
// HSM of the linked cluster clusterID: a node certificate naming clusterID
// under a cluster certificate whose CommonName is clusterID, chaining to
// the link's anchor; or, when clusterID is not this node's lineage (the
// cluster own's CommonName names), under this node's own cluster
// certificate, which a cluster restored from a backup of the same lineage
// holds as well (and with it the cluster key that could issue any node
// certificate under it anyway). That certificate must chain to the link's
// anchor too.
func linkTrusts(own *pki.ClusterCertificates, anchor *x509.Certificate, clusterID string, now func() time.Time) []pki.Trust {
	trusts := []pki.Trust{{TrustAnchor: anchor, ClusterID: clusterID, Now: now}}
	if own != nil && own.ClusterID != clusterID {
		trusts = append(trusts, pki.Trust{
			TrustAnchor: anchor, ClusterID: clusterID, CertificateClusterID: own.ClusterID,
			ClusterCert: own.Certificate, Intermediates: own.Intermediates, Now: now,
		})
	}
	return trusts
}

// peerTable maps the HSM ids of a node's peers to their node ids, re-reading
// the node's config file when asked about an HSM it does not know yet.
type peerTable struct {
	mu    sync.Mutex
	byHSM map[string]uint32
}

func newPeerTable(peers []peerFile) *peerTable {
	t := &peerTable{byHSM: map[string]uint32{}}
	for _, p := range peers {
		t.byHSM[p.HSMID] = p.ID
	}
	return t
}

func (t *peerTable) lookup(hsmID, path string) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.byHSM[hsmID]; ok {
		return id, true
	}
	f, err := readRawHSMFile(path)
	if err != nil {
		return 0, false
	}
	for _, p := range f.Peers {
		t.byHSM[p.HSMID] = p.ID
	}
	id, ok := t.byHSM[hsmID]
	return id, ok
}
