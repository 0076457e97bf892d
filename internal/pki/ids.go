package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// URI scheme of node identities: coffer://cluster/<cluster-id>/hsm/<hsm-id>.
const (
	uriScheme = "coffer"
	uriHost   = "cluster"
	maxIDLen  = 128
)

// NodeIdentity is who a verified node certificate says its holder is.
type NodeIdentity struct {
	ClusterID   string
	HsmID       string
	Certificate *x509.Certificate
}

// checkID accepts ids such as "cluster-1234abcd" and "hsm-5678": 1 to 128
// characters from [A-Za-z0-9._-], not starting with '.' or '-', so an id is
// a clean URI path segment and a clean CommonName.
func checkID(kind, id string) error {
	if id == "" || len(id) > maxIDLen {
		return refusef(ErrInvalidID, kind+" id", nil, "%q must be 1 to %d characters", id, maxIDLen)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '-' || r == '.' || r == '_')
		if !ok {
			return refusef(ErrInvalidID, kind+" id", nil, "%q: character %q at %d not allowed", id, r, i)
		}
	}
	return nil
}

// NodeURI is the URI SAN naming HSM hsmID of cluster clusterID.
func NodeURI(clusterID, hsmID string) (*url.URL, error) {
	if err := checkID("cluster", clusterID); err != nil {
		return nil, err
	}
	if err := checkID("HSM", hsmID); err != nil {
		return nil, err
	}
	return &url.URL{Scheme: uriScheme, Host: uriHost, Path: "/" + clusterID + "/hsm/" + hsmID}, nil
}

// parseNodeURI is the inverse of NodeURI. It accepts nothing else: no
// query, fragment, user info, port, escaped characters or other shape.
func parseNodeURI(u *url.URL) (clusterID, hsmID string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%q: %s", u.String(), why)
	}
	if u.Scheme != uriScheme || u.Host != uriHost || u.User != nil || u.Opaque != "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return bad(fmt.Sprintf("want %s://%s/<cluster-id>/hsm/<hsm-id>", uriScheme, uriHost))
	}
	if u.RawPath != "" && u.RawPath != u.Path {
		return bad("escaped characters are not allowed")
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 4 || parts[0] != "" || parts[2] != "hsm" {
		return bad("path must be /<cluster-id>/hsm/<hsm-id>")
	}
	if checkID("cluster", parts[1]) != nil || checkID("HSM", parts[3]) != nil {
		return bad("invalid cluster or HSM id")
	}
	return parts[1], parts[3], nil
}

// nodeIdentity returns the identity in cert's single coffer:// URI SAN.
// Other URI schemes are ignored; two coffer URIs are refused.
func nodeIdentity(cert *x509.Certificate, what string) (NodeIdentity, error) {
	var found []NodeIdentity
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		c, h, err := parseNodeURI(u)
		if err != nil {
			return NodeIdentity{}, refuse(ErrNoNodeIdentity, what, cert, err)
		}
		found = append(found, NodeIdentity{ClusterID: c, HsmID: h, Certificate: cert})
	}
	if len(found) != 1 {
		return NodeIdentity{}, refusef(ErrNoNodeIdentity, what, cert, "found %d %s:// URIs, want exactly 1", len(found), uriScheme)
	}
	return found[0], nil
}

// CertificateIdentity is who cert's single coffer:// URI SAN says its
// holder is, without verifying cert: for a node's own certificate, or one
// a verified handshake delivered.
func CertificateIdentity(cert *x509.Certificate) (NodeIdentity, error) {
	if cert == nil {
		return NodeIdentity{}, refusef(ErrConfig, "node certificate", nil, "nil certificate")
	}
	return nodeIdentity(cert, "node certificate")
}
