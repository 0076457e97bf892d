package controlplane

import "slices"

// DeleteHsmRequest is the input of DeleteHsm: the HSM is named by its id,
// its ENI id or its ENI address (any one is enough).
type DeleteHsmRequest struct {
	ClusterId string `json:"ClusterId"`
	HsmId     string `json:"HsmId"`
	EniId     string `json:"EniId"`
	EniIp     string `json:"EniIp"`
}

// DeleteHsmResponse is the output of DeleteHsm.
type DeleteHsmResponse struct {
	HsmId string `json:"HsmId"`
}

func (s *Server) deleteHsm(c *call, body []byte) (any, error) {
	var req DeleteHsmRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkClusterID("clusterId", req.ClusterId); err != nil {
		return nil, err
	}
	if req.HsmId == "" && req.EniId == "" && req.EniIp == "" {
		return nil, invalid("Name the HSM to delete with HsmId, EniId or EniIp.")
	}
	for _, f := range []struct {
		name, v, example string
		re               interface{ MatchString(string) bool }
	}{{"hsmId", req.HsmId, "hsm-abcdefghijk", reHsmID}, {"eniId", req.EniId, "eni-0123456789abcdef0", reEniID}, {"eniIp", req.EniIp, "127.0.0.11", reIP}} {
		if f.v != "" && !f.re.MatchString(f.v) {
			return nil, invalid("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern (e.g. %s)", truncate(f.v, 100), f.name, f.example)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.cluster(c, req.ClusterId)
	if err != nil {
		return nil, err
	}
	var h *hsmRecord
	for _, x := range cl.HSMs {
		if (req.HsmId == "" || x.ID == req.HsmId) && (req.EniId == "" || x.EniID == req.EniId) && (req.EniIp == "" || x.EniIP == req.EniIp) {
			h = x
			break
		}
	}
	if h == nil {
		return nil, notFound("No HSM of cluster %s matches %s.", cl.ID, describeRef(req))
	}
	if h.State != HsmDeleteInProgress {
		// CloudHSM backs a cluster up before an HSM leaves it; the removal
		// waits for that backup (reconcileCluster).
		if cl.initialized() && cl.State != ClusterInitializeInProgress && slices.ContainsFunc(cl.HSMs, func(x *hsmRecord) bool { return x.Serving }) {
			if b := s.addBackup(cl, reasonHSMRemoval); b != nil {
				h.RemovalBackup = b.ID
			}
		}
		h.State, h.StateMessage = HsmDeleteInProgress, ""
		if err := s.saveCluster(cl); err != nil {
			return nil, err
		}
		s.log.Info("HSM deleting", "region", cl.Region, "cluster", cl.ID, "hsm", h.ID)
		s.wake()
	}
	return DeleteHsmResponse{HsmId: h.ID}, nil
}

func describeRef(r DeleteHsmRequest) string {
	s := ""
	for _, p := range [][2]string{{"HsmId", r.HsmId}, {"EniId", r.EniId}, {"EniIp", r.EniIp}} {
		if p[1] != "" {
			if s != "" {
				s += ", "
			}
			s += p[0] + " " + p[1]
		}
	}
	return s
}
