package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file: the lifecycle of backups, driven by the reconciler.
//
// A backup record is made CREATE_IN_PROGRESS (addBackup) when CloudHSM
// would make one: the cluster initialized or activated, an HSM added, an
// HSM about to be removed, BackupInterval since the last one. The
// reconciler then asks a ready HSM of the cluster for the blob
// (Provisioner.Backup) and streams it into the region's BlobStore; the
// backup is READY once the store holds it durably. A copy
// (CopyBackupToRegion) is the source's blob copied between the regions'
// stores. Retention makes old backups PENDING_DELETION; a backup
// PENDING_DELETION past its DeleteTimestamp becomes DELETED and its blob
// is removed.

// maxBackupAttempts is how many times a backup is tried before it is
// given up.
const maxBackupAttempts = 5

// Why a backup was taken (backupRecord.Reason).
const (
	reasonInitialized = "cluster initialized"
	reasonActivated   = "cluster activated"
	reasonHSMAdded    = "HSM added"
	reasonHSMRemoval  = "before an HSM is removed"
	reasonPeriodic    = "periodic"
	reasonCopy        = "copy"
)

// errNoBackupSource: what a backup would be made from is gone (the
// cluster, or the source of a copy): trying again cannot help.
var errNoBackupSource = errors.New("nothing to back up")

// openBlobStore makes the region's store from its configuration.
func openBlobStore(dataDir string, r Region) (BlobStore, error) {
	switch {
	case r.Backups.Store != nil:
		return r.Backups.Store, nil
	case r.Backups.S3 != nil:
		return NewS3Store(*r.Backups.S3, filepath.Join(dataDir, "backups", "spool", r.Name))
	case r.Backups.Dir != "":
		return NewDirStore(r.Backups.Dir)
	}
	return NewDirStore(filepath.Join(dataDir, "backups", r.Name))
}

// addBackup records a backup of cl to be taken (s.mu held; the caller
// saves cl, whose LastBackup it sets).
func (s *Server) addBackup(cl *clusterRecord, reason string) *backupRecord {
	now := s.now().UTC()
	id := s.newID("backup")
	b := &backupRecord{
		Region: cl.Region, Account: cl.Account, ID: id, BoundID: id, ClusterID: cl.ID, State: BackupCreateInProgress,
		Created: now, HsmType: cl.HsmType, Mode: cl.Mode, Reason: reason,
	}
	if err := s.saveBackup(b); err != nil {
		s.log.Error("save backup", "err", err)
		return nil
	}
	s.regions[cl.Region].backups[b.ID] = b
	cl.LastBackup = now
	s.log.Info("backup started", "region", cl.Region, "cluster", cl.ID, "backup", b.ID, "reason", reason)
	s.wake()
	return b
}

// newer orders backups by creation, then id.
func newer(a, b *backupRecord) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.ID > b.ID
}

func retentionDays(p BackupRetentionPolicy) (int, bool) {
	if p.Type != "DAYS" {
		return 0, false
	}
	n, err := strconv.Atoi(p.Value)
	return n, err == nil && n > 0
}

// backupTimers is the reconciler's look at the clock (s.mu held): expiry
// by the retention policy, the end of PENDING_DELETION, periodic backups.
//
// Retention, as CloudHSM documents it: it applies to the backups a
// cluster made (not to copies, which belong to no cluster and are only
// deleted by DeleteBackup); a READY backup older than the cluster's
// retention days becomes PENDING_DELETION (so RestoreBackup can take it
// back for 7 days), except one marked NeverExpires and the cluster's most
// recent READY backup, which is never expired.
func (s *Server) backupTimers(now time.Time) {
	for _, r := range s.regions {
		newest := map[string]*backupRecord{}
		for _, b := range r.backups {
			if b.State == BackupReady && b.SourceBackup == "" {
				if n := newest[b.ClusterID]; n == nil || newer(b, n) {
					newest[b.ClusterID] = b
				}
			}
		}
		for _, b := range r.backups {
			changed := false
			switch {
			case b.State == BackupReady && b.SourceBackup == "" && !b.NeverExpires && newest[b.ClusterID] != b:
				cl := r.clusters[b.ClusterID]
				if cl == nil {
					continue
				}
				days, ok := retentionDays(cl.Retention)
				if !ok || now.Before(b.Created.Add(time.Duration(days)*24*time.Hour)) {
					continue
				}
				b.State, b.DeleteAt, b.Expired, changed = BackupPendingDeletion, now.Add(s.cfg.DeletedBackupRetention), true, true
				s.log.Info("backup expired by the cluster's retention policy", "region", r.cfg.Name, "backup", b.ID, "days", days)
			case b.State == BackupPendingDeletion && !b.DeleteAt.IsZero() && !now.Before(b.DeleteAt):
				b.State, changed = BackupDeleted, true
				s.log.Info("backup deleted", "region", r.cfg.Name, "backup", b.ID)
			}
			if changed {
				if err := s.saveBackup(b); err != nil {
					s.log.Error("save backup", "backup", b.ID, "err", err)
				}
			}
		}
		for _, cl := range r.clusters {
			if s.periodicDue(r, cl, now) {
				if s.addBackup(cl, reasonPeriodic) != nil {
					if err := s.saveCluster(cl); err != nil {
						s.log.Error("save cluster", "cluster", cl.ID, "err", err)
					}
				}
			}
		}
	}
}

// periodicDue: cl has an HSM that serves, no backup under way, and none
// started for BackupInterval.
func (s *Server) periodicDue(r *regionState, cl *clusterRecord, now time.Time) bool {
	switch cl.State {
	case ClusterInitialized, ClusterActive, ClusterDegraded:
	default:
		return false
	}
	if !slices.ContainsFunc(cl.HSMs, func(h *hsmRecord) bool { return h.Serving && h.State != HsmDeleteInProgress }) {
		return false
	}
	if now.Sub(cl.LastBackup) < s.cfg.BackupInterval {
		return false
	}
	for _, b := range r.backups {
		if b.ClusterID == cl.ID && b.SourceBackup == "" && b.State == BackupCreateInProgress {
			return false
		}
	}
	return true
}

// runBackups takes or copies every backup CREATE_IN_PROGRESS, oldest first.
func (s *Server) runBackups(ctx context.Context) {
	type job struct {
		region  string
		b       *backupRecord
		created time.Time
	}
	s.mu.Lock()
	var todo []job
	for name, r := range s.regions {
		for _, b := range r.backups {
			if b.State == BackupCreateInProgress {
				todo = append(todo, job{name, b, b.Created})
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(todo, func(a, b job) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.b.ID, b.b.ID)
	})
	for _, j := range todo {
		if ctx.Err() != nil {
			return
		}
		s.finishBackup(ctx, j.region, j.b.ID)
	}
}

// finishBackup takes (or copies) one backup CREATE_IN_PROGRESS and makes it
// READY, or counts a failed attempt.
func (s *Server) finishBackup(ctx context.Context, region, id string) {
	s.mu.Lock()
	r := s.regions[region]
	b := r.backups[id]
	if b == nil || b.State != BackupCreateInProgress || s.tried[id] {
		s.mu.Unlock()
		return
	}
	if s.tried != nil {
		s.tried[id] = true
	}
	var work func(ctx context.Context) (BackupInfo, error)
	var err error
	var from string
	if b.SourceBackup == "" {
		var spec NodeSpec
		if spec, err = s.backupSource(r, b); err == nil {
			from = spec.HsmID
			work = func(ctx context.Context) (BackupInfo, error) { return s.takeBackup(ctx, r.store, spec, id) }
		}
	} else {
		src := s.regions[b.SourceRegion]
		var sb *backupRecord
		if src != nil {
			sb = src.backups[b.SourceBackup]
		}
		if sb == nil || sb.State == BackupDeleted || sb.State == BackupCreateInProgress {
			err = fmt.Errorf("its source, backup %s of %s, is gone: %w", b.SourceBackup, b.SourceRegion, errNoBackupSource)
		} else {
			from = sb.ID
			want := BackupInfo{Records: sb.Records, Bytes: sb.Bytes}
			work = func(ctx context.Context) (BackupInfo, error) {
				n, err := copyBlob(ctx, src.store, sb.ID, sb.Bytes, r.store, id)
				if err == nil && want.Bytes != 0 && n != want.Bytes {
					err = fmt.Errorf("copied %d bytes of the source's %d", n, want.Bytes)
				}
				return BackupInfo{Records: want.Records, Bytes: n}, err
			}
		}
	}
	s.mu.Unlock()

	var info BackupInfo
	if work != nil {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.BackupTimeout)
		info, err = work(wctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return // stopping: not the backup's fault
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if b = r.backups[id]; b == nil || b.State != BackupCreateInProgress {
		return
	}
	log := s.log.With("region", region, "cluster", b.ClusterID, "backup", id, "from", from)
	if err == nil {
		b.State, b.Bytes, b.Records, b.LastError = BackupReady, info.Bytes, info.Records, ""
		log.Info("backup ready", "bytes", info.Bytes, "records", info.Records)
	} else {
		b.Attempts++
		b.LastError = truncate(err.Error(), 300)
		if errors.Is(err, errNoBackupSource) || errors.Is(err, ErrBlobNotFound) || b.Attempts >= maxBackupAttempts {
			b.State = BackupDeleted
			log.Error("backup given up", "attempts", b.Attempts, "err", err)
		} else {
			log.Warn("backup failed; trying again", "attempts", b.Attempts, "err", err)
		}
	}
	if err := s.saveBackup(b); err != nil {
		log.Error("save backup", "err", err)
	}
}

// backupSource chooses the HSM a backup of b's cluster is taken from (s.mu
// held): a serving HSM that stays, else one being removed (the last HSM
// of a cluster is backed up before it goes).
func (s *Server) backupSource(r *regionState, b *backupRecord) (NodeSpec, error) {
	cl := r.clusters[b.ClusterID]
	if cl == nil || !cl.initialized() {
		return NodeSpec{}, fmt.Errorf("cluster %s is not initialized or gone: %w", b.ClusterID, errNoBackupSource)
	}
	live := slices.DeleteFunc(slices.Clone(cl.HSMs), func(h *hsmRecord) bool { return h.State == HsmDeleteInProgress })
	var pick *hsmRecord
	for _, h := range live {
		if h.Serving && h.State == HsmActive && h.Port != 0 {
			pick = h
			break
		}
	}
	if pick == nil {
		for _, h := range cl.HSMs {
			if h.Serving && h.State == HsmDeleteInProgress && h.Port != 0 {
				pick = h
				break
			}
		}
	}
	if pick == nil {
		return NodeSpec{}, fmt.Errorf("no HSM of cluster %s is ready", cl.ID)
	}
	return s.nodeSpec(cl, pick, live), nil
}

// takeBackup streams the blob from the HSM side into the store.
func (s *Server) takeBackup(ctx context.Context, store BlobStore, spec NodeSpec, id string) (BackupInfo, error) {
	pr, pw := io.Pipe()
	var info BackupInfo
	var berr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		info, berr = s.prov.Backup(ctx, spec, id, pw)
		pw.CloseWithError(berr) // nil: the store reads to EOF
	}()
	n, perr := store.Put(ctx, id, pr)
	pr.CloseWithError(errors.New("the backup store stopped reading"))
	<-done
	switch {
	case berr != nil:
		return info, fmt.Errorf("HSM %s: %w", spec.HsmID, berr)
	case perr != nil:
		return info, perr
	case n != info.Bytes:
		return info, fmt.Errorf("HSM %s reported a blob of %d bytes; the store got %d", spec.HsmID, info.Bytes, n)
	}
	return info, nil
}

// purgeBlobs removes the blobs of DELETED backups.
func (s *Server) purgeBlobs(ctx context.Context) {
	type job struct {
		r  *regionState
		id string
	}
	s.mu.Lock()
	var todo []job
	for _, r := range s.regions {
		for _, b := range r.backups {
			if b.State == BackupDeleted && !b.Purged {
				todo = append(todo, job{r, b.ID})
			}
		}
	}
	s.mu.Unlock()
	for _, j := range todo {
		if ctx.Err() != nil {
			return
		}
		err := j.r.store.Delete(ctx, j.id)
		s.mu.Lock()
		if b := j.r.backups[j.id]; b != nil && err == nil {
			b.Purged = true
			if err := s.saveBackup(b); err != nil {
				s.log.Error("save backup", "backup", b.ID, "err", err)
			}
		} else if err != nil {
			s.log.Warn("remove a deleted backup's blob", "backup", j.id, "store", j.r.store.String(), "err", err)
		}
		s.mu.Unlock()
	}
}

// removalBackupDone takes the backup made before an HSM's removal if it
// is still to be taken, and reports whether the removal may go on (the
// backup is READY or was given up).
func (s *Server) removalBackupDone(ctx context.Context, region, id string) bool {
	s.finishBackup(ctx, region, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.regions[region].backups[id]
	return b == nil || b.State != BackupCreateInProgress
}

// restoreSource is the backup the next HSM of cl starts from when no HSM
// of cl is left to clone (s.mu held): the cluster's newest READY backup,
// else the backup it was made from while it is READY or PENDING_DELETION.
func restoreSource(r *regionState, cl *clusterRecord) *backupRecord {
	var best *backupRecord
	for _, b := range r.backups {
		if b.ClusterID == cl.ID && b.SourceBackup == "" && b.State == BackupReady && (best == nil || newer(b, best)) {
			best = b
		}
	}
	if best != nil {
		return best
	}
	if b := r.backups[cl.SourceBackupID]; b != nil && (b.State == BackupReady || b.State == BackupPendingDeletion) {
		return b
	}
	return nil
}

// restoreOpener opens the blob of backup id, of size bytes, in store.
func restoreOpener(store BlobStore, id string, size int64) func(ctx context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) { return getSized(ctx, store, id, size) }
}
