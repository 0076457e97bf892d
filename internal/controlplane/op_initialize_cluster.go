package controlplane

import (
	"errors"
	"unicode/utf8"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// InitializeClusterRequest is the input of InitializeCluster.
type InitializeClusterRequest struct {
	ClusterId   string `json:"ClusterId"`
	SignedCert  string `json:"SignedCert"`
	TrustAnchor string `json:"TrustAnchor"`
}

// InitializeClusterResponse is the output of InitializeCluster.
type InitializeClusterResponse struct {
	State        string `json:"State"`
	StateMessage string `json:"StateMessage,omitempty"`
}

const maxCertLen = 20000

func (s *Server) initializeCluster(c *call, body []byte) (any, error) {
	var req InitializeClusterRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkClusterID("clusterId", req.ClusterId); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"signedCert", req.SignedCert}, {"trustAnchor", req.TrustAnchor}} {
		if err := required(f.name, f.v); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(f.v) > maxCertLen {
			return nil, invalid("1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", f.name, maxCertLen)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.cluster(c, req.ClusterId)
	if err != nil {
		return nil, err
	}
	switch {
	case cl.initialized():
		return nil, invalid("Cluster %s is already initialized (state %s).", cl.ID, cl.State)
	case cl.State == ClusterDeleteInProgress || cl.State == ClusterDeleted:
		return nil, invalid("Cluster %s is being deleted (state %s).", cl.ID, cl.State)
	case cl.ClusterCsr == "":
		return nil, invalid("Cluster %s has no cluster CSR yet: create an HSM in it (CreateHsm), wait until the HSM is ACTIVE, then sign Certificates.ClusterCsr of DescribeClusters.", cl.ID)
	}
	if _, err := pki.VerifyClusterCertificate([]byte(cl.ClusterCsr), []byte(req.SignedCert), []byte(req.TrustAnchor), s.now()); err != nil {
		return nil, invalid("%s", initRefusal(cl.ID, err))
	}
	cl.ClusterCertificate, cl.TrustAnchor = req.SignedCert, req.TrustAnchor
	cl.State, cl.StateMessage = ClusterInitializeInProgress, "Cluster is initializing. State will change to INITIALIZED upon completion."
	if err := s.saveCluster(cl); err != nil {
		return nil, err
	}
	s.log.Info("cluster initializing", "region", cl.Region, "cluster", cl.ID)
	s.wake()
	return InitializeClusterResponse{State: cl.State, StateMessage: cl.StateMessage}, nil
}

// initRefusal says what is wrong with InitializeCluster's certificates and
// what to do about it.
func initRefusal(clusterID string, err error) string {
	why := err.Error()
	switch {
	case errors.Is(err, pki.ErrKeyMismatch):
		return "SignedCert is not a certificate for this cluster's CSR (its public key differs): sign Certificates.ClusterCsr of cluster " + clusterID + " as DescribeClusters shows it. (" + why + ")"
	case errors.Is(err, pki.ErrSubjectMismatch):
		return "SignedCert must keep the CSR's subject, whose CommonName is the cluster id " + clusterID + ". (" + why + ")"
	case errors.Is(err, pki.ErrNotChained):
		return "SignedCert does not chain to TrustAnchor: give as TrustAnchor the CA certificate that signed it, and put any intermediate CA certificates after the cluster certificate in SignedCert. (" + why + ")"
	case errors.Is(err, pki.ErrAnchorNotCA):
		return "TrustAnchor is not a CA certificate. (" + why + ")"
	case errors.Is(err, pki.ErrExpired):
		return "SignedCert or a certificate of its chain is expired or not yet valid. (" + why + ")"
	case errors.Is(err, pki.ErrPEMCount):
		return "TrustAnchor must be exactly one PEM certificate. (" + why + ")"
	case errors.Is(err, pki.ErrNoPEM), errors.Is(err, pki.ErrPEMType), errors.Is(err, pki.ErrMalformedCertificate), errors.Is(err, pki.ErrPEMEncrypted):
		return "SignedCert and TrustAnchor must be PEM X.509 certificates (-----BEGIN CERTIFICATE-----). (" + why + ")"
	}
	return "The certificates were refused: " + why
}
