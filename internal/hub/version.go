package hub

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

type x509Cert = x509.Certificate

// policyVersion names a policy by the start of its SHA-256, so agents and
// the inventory can tell which policy a host runs.
func policyVersion(p []byte) string {
	s := sha256.Sum256(p)
	return "sha256:" + hex.EncodeToString(s[:8])
}
