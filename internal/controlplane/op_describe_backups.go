package controlplane

import (
	"slices"
	"strings"
)

// DescribeBackupsRequest is the input of DescribeBackups.
type DescribeBackupsRequest struct {
	NextToken     string              `json:"NextToken"`
	MaxResults    *int                `json:"MaxResults"`
	Filters       map[string][]string `json:"Filters"`
	Shared        bool                `json:"Shared"`
	SortAscending bool                `json:"SortAscending"`
}

// DescribeBackupsResponse is the output of DescribeBackups.
type DescribeBackupsResponse struct {
	Backups   []Backup `json:"Backups"`
	NextToken string   `json:"NextToken,omitempty"`
}

const maxBackupsPage = 50

// describeBackups lists the region's backups, newest first unless
// SortAscending. Shared lists backups other accounts shared with the
// caller: one control plane has no other accounts' backups to share, so
// that list is empty.
func (s *Server) describeBackups(c *call, body []byte) (any, error) {
	var req DescribeBackupsRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.NextToken) > 256 {
		return nil, invalid("NextToken is longer than 256 characters.")
	}
	match, err := backupFilter(req.Filters)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*backupRecord
	if !req.Shared {
		for _, b := range c.region.backups {
			if b.State != BackupDeleted && ownedBy(b.Account, c.account) && match(b) {
				all = append(all, b)
			}
		}
	}
	pos := func(b *backupRecord) string { return position(b.Created, b.ID) }
	slices.SortFunc(all, func(a, b *backupRecord) int {
		if req.SortAscending {
			return strings.Compare(pos(a), pos(b))
		}
		return strings.Compare(pos(b), pos(a))
	})
	pg, next, err := paginate(all, pos, req.NextToken, req.MaxResults, maxBackupsPage, !req.SortAscending)
	if err != nil {
		return nil, err
	}
	out := DescribeBackupsResponse{Backups: []Backup{}, NextToken: next}
	for _, b := range pg {
		out.Backups = append(out.Backups, b.wire(c.account))
	}
	return out, nil
}

// backupFilter checks DescribeBackups' filters: backupIds,
// sourceBackupIds, clusterIds, states, neverExpires.
func backupFilter(filters map[string][]string) (func(*backupRecord) bool, error) {
	for k, vs := range filters {
		for _, v := range vs {
			var err error
			switch k {
			case "backupIds", "sourceBackupIds":
				err = checkPattern("filters."+k, v, reBackupID, "backup-abcdefghijk")
			case "clusterIds":
				err = checkPattern("filters.clusterIds", v, reClusterID, "cluster-abcdefghijk")
			case "states":
				if !slices.Contains(backupStates, v) {
					err = invalid("Invalid state %q in filter states; valid states: %s.", truncate(v, 64), strings.Join(backupStates, ", "))
				}
			case "neverExpires":
				if v != "true" && v != "false" {
					err = invalid("Invalid value %q in filter neverExpires: want true or false.", truncate(v, 64))
				}
			default:
				err = invalid("Invalid filter %q. Valid filters for DescribeBackups: backupIds, sourceBackupIds, clusterIds, states, neverExpires.", truncate(k, 64))
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return func(b *backupRecord) bool {
		for k, vs := range filters {
			var v string
			switch k {
			case "backupIds":
				v = b.ID
			case "sourceBackupIds":
				v = b.SourceBackup
			case "clusterIds":
				v = b.ClusterID
			case "states":
				v = b.State
			case "neverExpires":
				v = "false"
				if b.NeverExpires {
					v = "true"
				}
			}
			if !slices.Contains(vs, v) {
				return false
			}
		}
		return true
	}, nil
}
