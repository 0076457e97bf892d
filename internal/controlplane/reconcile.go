package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"
)

// The reconciler makes the HSMs match the records and moves the states on.
// It is one goroutine (Run), so no two provisioning steps for one HSM ever
// overlap. Each pass copies a cluster under s.mu, provisions without the
// lock, then applies what it learned to the live record if that record
// still is in the state the step started from.

// Run reconciles until ctx ends. The caller owns it: cancel ctx and wait
// for Run to return before Close.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		s.reconcile(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-t.C:
		}
	}
}

func (s *Server) reconcile(ctx context.Context) {
	s.mu.Lock()
	var work []*clusterRecord
	now := s.now().UTC()
	s.tried = map[string]bool{}
	for _, r := range s.regions {
		for _, cl := range r.clusters {
			if cl.State != ClusterDeleted {
				work = append(work, cl.clone())
			}
		}
	}
	s.backupTimers(now)
	s.mu.Unlock()
	slices.SortFunc(work, func(a, b *clusterRecord) int { return a.Created.Compare(b.Created) })
	for _, cl := range work {
		if ctx.Err() != nil {
			return
		}
		s.reconcileCluster(ctx, cl)
	}
	s.runBackups(ctx)
	s.purgeBlobs(ctx)
}

// apply runs fn on the live record of snap's cluster and saves it.
func (s *Server) apply(snap *clusterRecord, fn func(cl *clusterRecord) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regions[snap.Region]
	cl := r.clusters[snap.ID]
	if cl == nil || !fn(cl) {
		return
	}
	if err := s.saveCluster(cl); err != nil {
		s.log.Error("save cluster", "cluster", cl.ID, "err", err)
	}
}

func (s *Server) reconcileCluster(ctx context.Context, snap *clusterRecord) {
	log := s.log.With("region", snap.Region, "cluster", snap.ID)
	if snap.State == ClusterCreateInProgress {
		s.apply(snap, func(cl *clusterRecord) bool {
			if cl.State != ClusterCreateInProgress {
				return false
			}
			cl.State = ClusterUninitialized
			return true
		})
		snap.State = ClusterUninitialized
	}

	// Deletions first: they free addresses and change the peers.
	for _, h := range snap.HSMs {
		if h.State != HsmDeleteInProgress {
			continue
		}
		if h.RemovalBackup != "" && !s.removalBackupDone(ctx, snap.Region, h.RemovalBackup) {
			continue // the backup before its removal is not taken yet
		}
		if err := s.prov.RemoveHSM(ctx, HSMRef{ClusterRef: snap.ref(), HsmID: h.ID}); err != nil {
			log.Error("remove HSM", "hsm", h.ID, "err", err)
			continue
		}
		log.Info("HSM deleted", "hsm", h.ID)
		s.apply(snap, func(cl *clusterRecord) bool {
			cl.HSMs = slices.DeleteFunc(cl.HSMs, func(x *hsmRecord) bool { return x.ID == h.ID })
			return true
		})
	}
	live := slices.DeleteFunc(slices.Clone(snap.HSMs), func(h *hsmRecord) bool { return h.State == HsmDeleteInProgress })

	switch {
	case snap.State == ClusterDeleteInProgress:
		if len(snap.HSMs) > 0 {
			return
		}
		if err := s.prov.RemoveCluster(ctx, snap.ref()); err != nil {
			log.Error("remove cluster", "err", err)
			return
		}
		s.apply(snap, func(cl *clusterRecord) bool {
			cl.State, cl.Deleted = ClusterDeleted, s.now().UTC()
			return true
		})
		log.Info("cluster deleted")
	case snap.State == ClusterUninitialized:
		s.reconcileUninitialized(ctx, snap, live)
	case snap.initialized():
		s.reconcileNodes(ctx, snap, live)
	}
}

// reconcileUninitialized: the first HSM makes the cluster key and CSR; the
// others wait for InitializeCluster. If the HSM that made the key was
// deleted, the next one re-publishes the HSM certificate for the same key.
func (s *Server) reconcileUninitialized(ctx context.Context, snap *clusterRecord, live []*hsmRecord) {
	if len(live) == 0 {
		return
	}
	keyHSMLive := slices.ContainsFunc(live, func(h *hsmRecord) bool { return h.ID == snap.KeyHSM })
	if snap.ClusterCsr == "" || !keyHSMLive {
		h := live[0]
		res, err := s.prov.ClusterKey(ctx, snap.ref(), h.ID)
		if err != nil {
			s.log.Error("cluster key", "cluster", snap.ID, "hsm", h.ID, "err", err)
			s.apply(snap, func(cl *clusterRecord) bool {
				if x := cl.hsm(h.ID); x != nil && x.State == HsmCreateInProgress {
					x.StateMessage = "making the cluster key failed; retrying: " + truncate(err.Error(), 200)
					return true
				}
				return false
			})
			return
		}
		s.apply(snap, func(cl *clusterRecord) bool {
			if cl.State != ClusterUninitialized {
				return false
			}
			if cl.ClusterCsr != "" && cl.ClusterCsr != res.ClusterCSR {
				s.log.Error("the HSM side returned another CSR for the cluster; keeping the first", "cluster", cl.ID)
				return false
			}
			cl.ClusterCsr, cl.HsmCertificate, cl.KeyHSM = res.ClusterCSR, res.HsmCertificate, h.ID
			return true
		})
	}
	s.apply(snap, func(cl *clusterRecord) bool {
		changed := false
		for _, h := range cl.HSMs {
			if h.State == HsmCreateInProgress && cl.ClusterCsr != "" {
				h.State, h.StateMessage, changed = HsmActive, "", true
			}
		}
		return changed
	})
}

// reconcileNodes keeps the node of every HSM of an initialized cluster
// running, and moves the cluster to INITIALIZED and ACTIVE.
func (s *Server) reconcileNodes(ctx context.Context, snap *clusterRecord, live []*hsmRecord) {
	if len(live) == 0 {
		return
	}
	snap, live, ok := s.fixNodeConfigs(snap, live)
	if !ok {
		return
	}
	// An HSM without a masking key source waits (assignMaskingKeys said why).
	live = slices.DeleteFunc(live, func(h *hsmRecord) bool { return h.MaskingKey == "" })
	if len(live) == 0 {
		return
	}
	s.publishRestoredHsmCertificate(ctx, snap, live)
	results := s.ensureNodes(ctx, snap, live)
	activated := s.clusterActivated(ctx, snap, live, results)
	s.apply(snap, func(cl *clusterRecord) bool {
		if !cl.initialized() {
			return false
		}
		added := recordNodeResults(cl, results)
		s.advanceInitialized(cl, activated, added)
		return true
	})
}

// nodeResult is what Provisioner.Ensure said of an HSM's node.
type nodeResult struct {
	st  NodeStatus
	err error
}

// fixNodeConfigs fixes what a node's configuration needs before its first
// start: its ports and where its masking key comes from. It returns the
// cluster as saved and its HSMs not being deleted, or false when there
// is no port to give or the cluster is gone.
func (s *Server) fixNodeConfigs(snap *clusterRecord, live []*hsmRecord) (*clusterRecord, []*hsmRecord, bool) {
	if !slices.ContainsFunc(live, func(h *hsmRecord) bool { return h.Port == 0 || h.MaskingKey == "" }) {
		return snap, live, true
	}
	ports := map[string][2]int{}
	for _, h := range live {
		if h.Port == 0 {
			p, m, err := pickPorts(h.EniIP)
			if err != nil {
				s.log.Error("no port for HSM", "hsm", h.ID, "ip", h.EniIP, "err", err)
				return nil, nil, false
			}
			ports[h.ID] = [2]int{p, m}
		}
	}
	var fixed *clusterRecord
	s.apply(snap, func(cl *clusterRecord) bool {
		for _, h := range cl.HSMs {
			if p, ok := ports[h.ID]; ok && h.Port == 0 {
				h.Port, h.MetricsPort = p[0], p[1]
			}
		}
		s.assignMaskingKeys(cl)
		fixed = cl.clone()
		return true
	})
	if fixed == nil {
		return nil, nil, false
	}
	live = slices.DeleteFunc(slices.Clone(fixed.HSMs), func(h *hsmRecord) bool { return h.State == HsmDeleteInProgress })
	return fixed, live, true
}

// ensureNodes has the node of every HSM in live run as its spec says.
// Once one node restarted or is not ready yet, the others are not
// restarted for a new configuration in this pass.
func (s *Server) ensureNodes(ctx context.Context, snap *clusterRecord, live []*hsmRecord) map[string]nodeResult {
	results := map[string]nodeResult{}
	restarting := false
	for _, h := range live {
		spec := s.nodeSpec(snap, h, live)
		st, err := s.prov.Ensure(ctx, spec, !restarting)
		if err != nil {
			s.log.Warn("HSM node not running", "cluster", snap.ID, "hsm", h.ID, "err", err)
		}
		if st.Restarted || (st.Running && !st.Ready) {
			restarting = true
		}
		results[h.ID] = nodeResult{st, err}
	}
	return results
}

// clusterActivated reports whether an INITIALIZED cluster has been
// activated: made from the backup of an activated cluster and served by a
// ready HSM, or activated as far as the node of a ready HSM knows.
func (s *Server) clusterActivated(ctx context.Context, snap *clusterRecord, live []*hsmRecord, results map[string]nodeResult) bool {
	if snap.State != ClusterInitialized {
		return false
	}
	if snap.RestoredActivated && slices.ContainsFunc(live, func(h *hsmRecord) bool { return results[h.ID].st.Ready }) {
		// Made from the backup of an activated cluster: active once an
		// HSM serves it.
		return true
	}
	for _, h := range live {
		if r := results[h.ID]; r.st.Ready {
			ok, err := s.prov.Activated(ctx, s.nodeSpec(snap, h, live))
			if err != nil {
				s.log.Warn("activation check", "hsm", h.ID, "err", err)
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// recordNodeResults sets the state of each HSM of cl that results name
// from its node's, and reports whether an HSM added to a cluster past
// initialization became active.
func recordNodeResults(cl *clusterRecord, results map[string]nodeResult) (added bool) {
	for _, h := range cl.HSMs {
		r, ok := results[h.ID]
		if !ok || h.State == HsmDeleteInProgress {
			continue
		}
		switch {
		case r.st.Ready:
			if h.State == HsmCreateInProgress && cl.State != ClusterInitializeInProgress {
				added = true
			}
			h.State, h.StateMessage, h.Serving = HsmActive, "", true
		case !h.Serving:
			h.StateMessage = nodeMessage(r.st, r.err)
		default:
			h.State, h.StateMessage = HsmDegraded, nodeMessage(r.st, r.err)
		}
	}
	return added
}

// advanceInitialized moves cl to INITIALIZED once all its HSMs serve, and
// to ACTIVE once activated, and records the backups those steps and an
// added HSM call for.
func (s *Server) advanceInitialized(cl *clusterRecord, activated, added bool) {
	allActive := !slices.ContainsFunc(cl.HSMs, func(h *hsmRecord) bool { return h.State != HsmActive || !h.Serving })
	switch {
	case cl.State == ClusterInitializeInProgress && allActive:
		cl.State, cl.StateMessage = ClusterInitialized, ""
		s.log.Info("cluster initialized", "cluster", cl.ID)
		s.addBackup(cl, reasonInitialized)
	case cl.State == ClusterInitialized && activated:
		cl.State = ClusterActive
		s.log.Info("cluster activated", "cluster", cl.ID)
		if !added {
			s.addBackup(cl, reasonActivated)
		}
	}
	if added {
		s.addBackup(cl, reasonHSMAdded)
	}
}

func nodeMessage(st NodeStatus, err error) string {
	switch {
	case err != nil:
		return truncate("The HSM's node is not running: "+err.Error(), 300)
	case st.Message != "":
		return truncate(st.Message, 300)
	case st.Restarted:
		return "The HSM's node stopped and was restarted; it is catching up."
	}
	return "The HSM's node is starting."
}

func (s *Server) nodeSpec(cl *clusterRecord, h *hsmRecord, live []*hsmRecord) NodeSpec {
	spec := NodeSpec{
		HSMRef: HSMRef{ClusterRef: cl.ref(), HsmID: h.ID}, NodeID: h.NodeID, IP: h.EniIP, Port: h.Port,
		MetricsPort: h.MetricsPort, MaskingKey: h.MaskingKey, FIPS: cl.Mode == "FIPS",
		ClusterCertificate: cl.ClusterCertificate, TrustAnchor: cl.TrustAnchor,
	}
	if h.MaskingKey == "restore" && h.RestoreBackup != "" {
		var size int64
		if b := s.regions[cl.Region].backups[h.RestoreBackup]; b != nil {
			size = b.Bytes
		}
		spec.Restore = &RestoreSource{BoundID: h.RestoreBoundID, Open: restoreOpener(s.regions[cl.Region].store, h.RestoreBackup, size)}
	}
	for _, p := range live {
		if p.ID != h.ID && p.Port != 0 {
			spec.Peers = append(spec.Peers, NodePeer{NodeID: p.NodeID, HsmID: p.ID, Addr: net.JoinHostPort(p.EniIP, strconv.Itoa(p.Port))})
		}
	}
	return spec
}

// DefaultHSMPort is CloudHSM's client port; an HSM gets it when its address
// has it free, another port otherwise.
const DefaultHSMPort = 2223

// pickPorts chooses the HSM port and the metrics port on ip.
func pickPorts(ip string) (port, metrics int, err error) {
	free := func(p int) (int, error) {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	if port, err = free(DefaultHSMPort); err != nil {
		if port, err = free(0); err != nil {
			return 0, 0, fmt.Errorf("no free port on %s: %w", ip, err)
		}
	}
	for range 10 {
		if metrics, err = free(0); err == nil && metrics != port {
			return port, metrics, nil
		}
	}
	return 0, 0, errors.Join(errors.New("no free metrics port"), err)
}

// assignMaskingKeys says where each new HSM's masking key comes from
// (s.mu held): the first HSM of a new cluster creates it, the first of a
// cluster made from a backup restores that backup, later HSMs clone it
// from the others. An initialized cluster left with no HSM restores its
// next HSM from its newest READY backup; while an HSM is still being
// removed (its backup is taken first) the new one waits.
func (s *Server) assignMaskingKeys(cl *clusterRecord) {
	r := s.regions[cl.Region]
	hasSource := slices.ContainsFunc(cl.HSMs, func(h *hsmRecord) bool { return h.MaskingKey != "" && h.State != HsmDeleteInProgress })
	removing := slices.ContainsFunc(cl.HSMs, func(h *hsmRecord) bool { return h.State == HsmDeleteInProgress })
	for _, h := range cl.HSMs {
		if h.MaskingKey != "" || h.State == HsmDeleteInProgress {
			continue
		}
		switch {
		case !cl.MKCreated && cl.SourceBackupID == "":
			h.MaskingKey, cl.MKCreated = "create", true
		case hasSource:
			h.MaskingKey = "clone"
		case removing:
			h.StateMessage = "Waiting for the backup of the HSM being deleted, to restore it into this HSM."
			continue
		default:
			b := restoreSource(r, cl)
			if b == nil {
				h.StateMessage = "No HSM of the cluster is left to copy its keys from, and it has no READY backup to restore."
				continue
			}
			h.MaskingKey, h.RestoreBackup, h.RestoreBoundID, cl.MKCreated = "restore", b.ID, b.boundID(), true
			h.StateMessage = "Restoring backup " + b.ID + "."
			s.log.Info("HSM restores a backup", "cluster", cl.ID, "hsm", h.ID, "backup", b.ID)
		}
		hasSource = true
	}
}

// publishRestoredHsmCertificate gives a cluster made from a backup the
// HSM certificate of one of its HSMs, on the restored cluster key.
func (s *Server) publishRestoredHsmCertificate(ctx context.Context, snap *clusterRecord, live []*hsmRecord) {
	if snap.SourceBackupID == "" || slices.ContainsFunc(live, func(h *hsmRecord) bool { return h.ID == snap.KeyHSM }) {
		return
	}
	h := live[0]
	res, err := s.prov.ClusterKey(ctx, snap.ref(), h.ID)
	if err != nil {
		s.log.Warn("HSM certificate of a restored cluster", "cluster", snap.ID, "hsm", h.ID, "err", err)
		return
	}
	s.apply(snap, func(cl *clusterRecord) bool {
		if res.ClusterCSR != cl.ClusterCsr {
			s.log.Error("the HSM side has another cluster key than the backup restored; keeping the backup's CSR", "cluster", cl.ID)
			return false
		}
		cl.HsmCertificate, cl.KeyHSM = res.HsmCertificate, h.ID
		return true
	})
}
