package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
)

// NodeServerConfig is an HSM node's listener configuration: TLS 1.3 only,
// presenting cert (NodeTLSCertificate), and requesting a client
// certificate without requiring one. A client that sends none (an
// application, which logs in with a password) is accepted; one that sends
// one must present a node certificate of trust's cluster valid for
// clientAuth, or the handshake fails: Go's VerifyClientCertIfGiven, with
// Coffer's verification. PeerNode then tells who the peer node is.
func NodeServerConfig(cert tls.Certificate, trust Trust) (*tls.Config, error) {
	if err := trust.Validate(); err != nil {
		return nil, err
	}
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, refusef(ErrConfig, "node server TLS", nil, "no certificate or key")
	}
	cfg := baseConfig(trust)
	cfg.Certificates = []tls.Certificate{cert}
	// RequestClientCert: ask, do not verify here; VerifyConnection verifies
	// any certificate sent. The client's CertificateVerify (proof of
	// possession of the key) is always checked by crypto/tls.
	cfg.ClientAuth = tls.RequestClientCert
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		_, err := trust.VerifyNode(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, "")
		return err
	}
	return cfg, nil
}

// NodeClientConfig is a node's configuration for dialling a peer node at
// host (its IP address or DNS name, without port): mutual TLS 1.3, sending
// cert and verifying the peer with trust for serverAuth and host.
func NodeClientConfig(cert tls.Certificate, trust Trust, host string) (*tls.Config, error) {
	return NodeClientConfigAny(cert, []Trust{trust}, host)
}

// NodeClientConfigAny is NodeClientConfig accepting a peer that one of
// trusts accepts (VerifyNodeAny): a node dialling an HSM of a linked
// cluster that may be of its own lineage or of the linked cluster's.
func NodeClientConfigAny(cert tls.Certificate, trusts []Trust, host string) (*tls.Config, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, refusef(ErrConfig, "node client TLS", nil, "no certificate or key")
	}
	cfg, err := clientConfig(trusts, host)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// ClusterClientConfig is a cluster client's configuration for dialling the
// HSM at host (IP address or DNS name, without port): TLS 1.3, verifying
// the server's node certificate against the customer's trust anchor, for
// trust's cluster, serverAuth and host.
//
// InsecureSkipVerify is set, and only together with VerifyConnection, which
// does the whole verification (Trust.VerifyNode, hostname included): Go's
// own verifier cannot accept a cluster certificate made by
// `openssl x509 -req` as an issuer (see the package comment). host is
// captured here because tls.ConnectionState.ServerName is empty when an IP
// address is dialled.
func ClusterClientConfig(trust Trust, host string) (*tls.Config, error) {
	return clientConfig([]Trust{trust}, host)
}

// clientConfig is ClusterClientConfig for a server one of trusts accepts.
// The configuration's clock is the first trust's.
func clientConfig(trusts []Trust, host string) (*tls.Config, error) {
	if len(trusts) == 0 {
		return nil, refusef(ErrConfig, "client TLS", nil, "no trust policy")
	}
	for _, t := range trusts {
		if err := t.Validate(); err != nil {
			return nil, err
		}
	}
	if err := checkHost(host); err != nil {
		return nil, err
	}
	cfg := baseConfig(trusts[0])
	cfg.ServerName = host
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		_, err := VerifyNodeAny(trusts, cs.PeerCertificates, x509.ExtKeyUsageServerAuth, host)
		return err
	}
	return cfg, nil
}

// PeerNode returns the node identity of a connection's peer, if the peer
// sent a certificate. Only meaningful on connections made with this
// package's configurations, whose handshakes verified that certificate.
func PeerNode(cs tls.ConnectionState) (NodeIdentity, bool) {
	if len(cs.PeerCertificates) == 0 {
		return NodeIdentity{}, false
	}
	id, err := nodeIdentity(cs.PeerCertificates[0], "peer")
	return id, err == nil
}

func baseConfig(trust Trust) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		Time:       trust.Now,
	}
}

// checkHost accepts an IP address or a DNS name, not host:port.
func checkHost(host string) error {
	if host == "" {
		return refusef(ErrConfig, "server address", nil, "empty host")
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return refusef(ErrConfig, "server address", nil, "%q: give the host without a port", host)
	}
	return nil
}
