// Package pki owns the certificates of a Coffer cluster: the cluster key
// pair and its certificate signing request (the ClusterCsr of
// DescribeClusters), the HSM certificate, the verification of the signed
// cluster certificate and trust anchor that InitializeCluster receives, the
// node certificates issued under the cluster certificate, their
// verification, and the TLS 1.3 configurations built on them. It also holds
// a small "customer CA" for tests and for `coffer up`.
//
// # The hierarchy
//
//	customer trust anchor (the customer's CA, a CA certificate)
//	  └─ [customer intermediate CAs]       optional, sent with the signed cert
//	      └─ cluster certificate            the customer signs the ClusterCsr
//	          └─ node certificate           one per HSM, issued with the cluster key
//
// The cluster key pair is ECDSA P-256 (NewClusterKey). CloudHSM uses
// RSA-2048; we chose P-256 because it is 128-bit secure (RSA-2048 is 112-bit,
// which NIST SP 800-131A stops allowing for new signatures after 2030, well
// inside the 3652 days customers sign for), it is FIPS 186-5 approved,
// generating it is instant, and the cluster key's only job is to sign node
// certificates, which every TLS peer then checks. The customer's CA signs the
// CSR with its own key and algorithm, so `openssl x509 -req` works the same
// for any CSR key (tested). Every function here takes a crypto.Signer, so an
// RSA-2048 cluster key also works (tested) should a customer's CA policy
// demand RSA.
//
// The HSM certificate (HsmCertificate in DescribeClusters) is a self-signed,
// non-CA certificate on the cluster public key, naming the HSM that made the
// key (CN=<hsm-id>, URI coffer://cluster/<cluster-id>/hsm/<hsm-id>). CloudHSM
// issues it from the manufacturer's chain; Coffer is software and has no
// manufacturer, so it proves possession of the key and nothing more. The
// CloudHSM check still works: `openssl x509 -pubkey` of the HSM certificate
// equals `openssl req -pubkey` of the CSR (see CheckHsmCertificate).
//
// The cluster key is kept sealed at rest (SealClusterKey, OpenClusterKey)
// under a separate sealing key; it is never written as a plaintext PEM.
//
// # Files
//
// files.go writes and reads these on disk, for `coffer hsm init`, `coffer
// up` and the HSM side of the control plane's provisioning (`coffer hsm
// cluster-key`, `issue-cert`): the customer CA, a cluster directory
// (ClusterKeyFile sealed, ClusterCSRFile, ClusterCertFile) and an HSM's
// NodeKeyFile and NodeCertFile.
//
// # Why Coffer verifies node certificates itself
//
// `openssl x509 -req` makes a version 1 certificate (OpenSSL 3.0, tested)
// or, in newer releases that add key identifiers by default, a version 3
// certificate still without BasicConstraints.
// Go's x509.Verify accepts an intermediate only with BasicConstraints CA=true
// (Certificate.isValid returns NotAuthorizedToSign otherwise, whatever the
// version), and CheckSignatureFrom refuses a version 3 parent without
// BasicConstraints. So a node certificate under such a cluster certificate
// can never pass Go's own chain building. Coffer therefore verifies in two
// parts (Trust.VerifyNode):
//
//  1. the cluster certificate, as a leaf, chains to the trust anchor — plain
//     x509.Verify with the anchor as the only root and the customer's
//     intermediates (which are real CAs) as intermediates;
//  2. the node certificate is signed by the cluster certificate's key
//     (Certificate.CheckSignature, the low-level check that ignores the
//     parent's CA flag, limited to SHA-256-or-better algorithms), its issuer
//     name is the cluster certificate's subject, it is valid now, it has the
//     needed extended key usage, it is not a CA, and its coffer:// URI names
//     the expected cluster.
//
// Delegating from a non-CA certificate is safe only because the cluster
// certificate is bound to the cluster: its subject CommonName must be the
// cluster id (InitializeCluster checks it; `openssl x509 -req` keeps the CSR's
// subject). Without that, any end-entity certificate the customer's CA ever
// issued (a web server's, say) could mint "node certificates" for any
// cluster. Nodes, which hold their cluster certificate, pin it as well.
// A cluster restored from a backup of another keeps that cluster's key and
// certificate: its node certificates name its own id under a cluster
// certificate whose CommonName is the id of the cluster that was
// initialized (its lineage, Trust.CertificateClusterID); the binding of
// the certificate to one cluster key is the same.
// Generic verifiers (browsers, Go's default TLS) still refuse node
// certificates under a non-CA cluster certificate, as RFC 5280 wants. The
// cluster certificate's own BasicConstraints and KeyUsage are not
// consulted: v1, v3 without extensions, CA:TRUE and CA:FALSE all work. The
// CommonName rule is stricter than CloudHSM, which accepts any subject; a
// CA that rewrites subjects is refused at InitializeCluster with
// ErrSubjectMismatch rather than failing every client later.
//
// # TLS
//
// All connections are TLS 1.3 only. Because Go's built-in verification
// cannot accept the chain above, the client configurations set
// InsecureSkipVerify, but only together with a VerifyConnection callback that
// performs the complete check, including the IP or DNS SAN against the
// address dialled. VerifyConnection, unlike VerifyPeerCertificate, runs on
// every handshake including resumed sessions, and runs at the configuration's
// Time, so an expired certificate is refused on resumption too. No other code
// should set InsecureSkipVerify: build configurations with NodeServerConfig,
// NodeClientConfig (NodeClientConfigAny) and ClusterClientConfig.
//
// # Must not import
//
// Nothing from internal/ but internal/cryptobackend (the sealing AEAD) and
// internal/durable (the files of files.go are written whole): this package
// is a leaf used by the node, the client, the control plane and the CLI.
// Otherwise standard library only.
package pki
