package controlplane

import (
	"net/netip"
	"slices"
	"strings"
)

// CreateHsmRequest is the input of CreateHsm.
type CreateHsmRequest struct {
	ClusterId        string `json:"ClusterId"`
	AvailabilityZone string `json:"AvailabilityZone"`
	IpAddress        string `json:"IpAddress"`
}

// CreateHsmResponse is the output of CreateHsm.
type CreateHsmResponse struct {
	Hsm Hsm `json:"Hsm"`
}

// maxHSMsPerCluster is CloudHSM's default quota.
const maxHSMsPerCluster = 28

// createHsm adds an HSM in one of the cluster's availability zones. Unlike
// CloudHSM, a cluster that is not initialized yet accepts more than one:
// the others wait and join at initialization.
func (s *Server) createHsm(c *call, body []byte) (any, error) {
	var req CreateHsmRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkClusterID("clusterId", req.ClusterId); err != nil {
		return nil, err
	}
	if err := required("availabilityZone", req.AvailabilityZone); err != nil {
		return nil, err
	}
	if err := checkPattern("availabilityZone", req.AvailabilityZone, reAZ, "us-east-1a"); err != nil {
		return nil, err
	}
	if req.IpAddress != "" {
		if err := checkPattern("ipAddress", req.IpAddress, reIP, "127.0.0.11"); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.liveCluster(c, req.ClusterId)
	if err != nil {
		return nil, err
	}
	subnet, ok := cl.SubnetMapping[req.AvailabilityZone]
	if !ok {
		var azs []string
		for az := range cl.SubnetMapping {
			azs = append(azs, az)
		}
		slices.Sort(azs)
		return nil, invalid("Cluster %s has no subnet in availability zone %s; its subnets are in %s.", cl.ID, req.AvailabilityZone, strings.Join(azs, ", "))
	}
	if len(cl.HSMs) >= maxHSMsPerCluster {
		return nil, refuse(ErrLimitExceeded, "Cluster %s already has %d HSMs, the most a cluster may have.", cl.ID, maxHSMsPerCluster)
	}
	// With no HSM left (or none yet, made from a backup) the new HSM
	// restores the cluster's newest READY backup (assignMaskingKeys).
	if cl.initialized() && (cl.MKCreated || cl.SourceBackupID != "") && len(cl.HSMs) == 0 && restoreSource(c.region, cl) == nil {
		return nil, invalid("Cluster %s has no HSM left to copy its keys from and no READY backup to restore into a new HSM; restore a deleted backup first (RestoreBackup), or create a cluster from a backup of it (CreateCluster --source-backup-id).", cl.ID)
	}
	ip, err := s.allocateIP(c.region, req.AvailabilityZone, req.IpAddress)
	if err != nil {
		return nil, err
	}
	h := &hsmRecord{
		ID: s.newID("hsm"), AZ: req.AvailabilityZone, SubnetID: subnet, EniID: s.newHexID("eni"), EniIP: ip,
		NodeID: cl.NextNodeID, State: HsmCreateInProgress, Created: s.now().UTC(),
	}
	cl.NextNodeID++
	cl.HSMs = append(cl.HSMs, h)
	if err := s.saveCluster(cl); err != nil {
		cl.HSMs = cl.HSMs[:len(cl.HSMs)-1]
		return nil, err
	}
	s.log.Info("HSM created", "region", cl.Region, "cluster", cl.ID, "hsm", h.ID, "az", h.AZ, "ip", h.EniIP)
	s.wake()
	return CreateHsmResponse{Hsm: h.wire(cl)}, nil
}

// allocateIP gives the lowest free address of the zone's subnet, or checks
// the one asked for (s.mu held).
func (s *Server) allocateIP(r *regionState, az, want string) (string, error) {
	used := map[string]bool{}
	for _, cl := range r.clusters {
		for _, h := range cl.HSMs {
			used[h.EniIP] = true
		}
	}
	zone := az[len(az)-1]
	if want != "" {
		a, err := netip.ParseAddr(want)
		for n := 0; err == nil && n < 256; n++ {
			if ip, _ := eniIP(r.index, n, zone); ip == a {
				if used[want] {
					return "", invalid("IP address %s is already in use by another HSM.", want)
				}
				return want, nil
			}
		}
		first, _ := eniIP(r.index, 0, zone)
		return "", invalid("IP address %s is not in the subnet of availability zone %s (its addresses are %s, 127.%d.1.%d, ... 127.%d.255.%d).",
			want, az, first, r.index, first.As4()[3], r.index, first.As4()[3])
	}
	for n := 0; n < 256; n++ {
		ip, ok := eniIP(r.index, n, zone)
		if !ok {
			break
		}
		if !used[ip.String()] {
			return ip.String(), nil
		}
	}
	return "", refuse(ErrLimitExceeded, "No free IP address left in the subnet of availability zone %s.", az)
}
