// Package fleetca is the hub's certificate authority: it creates the CA and
// the hub's server certificate on first start, signs agents' certificate
// signing requests (the agent's key never leaves the agent), and verifies the
// client certificates agents present.
//
// Keys are ECDSA P-256: every TLS stack accepts them and they are cheap to
// verify at a thousand handshakes. Files are written with the repository's
// one durability recipe (temp file, fsync, rename, fsync the directory).
package fleetca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilfim/vigil/internal/atomicfile"
)

// Validity periods. Agent certificates are short-lived so that a stolen
// key stops working soon without revocation lists; agents renew at
// two thirds of the lifetime (see RenewAt).
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 2 * 365 * 24 * time.Hour
	AgentValidity  = 30 * 24 * time.Hour
)

// Errors of client certificate verification; the hub names them in its
// refusals and evidence records.
var (
	ErrNoClientCert = errors.New("no client certificate")
	ErrExpired      = errors.New("client certificate expired or not yet valid")
	ErrForeign      = errors.New("client certificate not issued by this hub")
	ErrBadCSR       = errors.New("invalid certificate request")
)

// CA is the hub's certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
	now  func() time.Time
}

// LoadOrCreate loads the CA from dir (ca.crt, ca.key), creating it on first
// use, and the hub's server certificate (server.crt, server.key) for
// loopback and the host's name.
func LoadOrCreate(dir string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ca directory: %w", err)
	}
	crtPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(crtPath); errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ca key: %w", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "vigil hub ca"},
			NotBefore:             now().Add(-time.Hour),
			NotAfter:              now().Add(CAValidity),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, fmt.Errorf("create ca certificate: %w", err)
		}
		if err := writeKey(keyPath, key); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(crtPath, pemCert(der), 0o644); err != nil {
			return nil, err
		}
	}
	crt, err := readCert(crtPath)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(crt)
	return &CA{Cert: crt, key: key, pool: pool, now: now}, nil
}

// Pool returns a pool holding only the CA certificate.
func (c *CA) Pool() *x509.CertPool { return c.pool }

// Fingerprint is the hex SHA-256 of the CA certificate; enrolment tokens
// carry it so an agent trusts nothing but this hub on first contact.
func (c *CA) Fingerprint() string { return Fingerprint(c.Cert) }

// Fingerprint is the hex SHA-256 of a certificate's DER encoding.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// PEM returns the CA certificate in PEM form.
func (c *CA) PEM() []byte { return pemCert(c.Cert.Raw) }

// ServerCert returns a server certificate for the given host names and IPs
// (loopback is always included), issued now; the hub issues a fresh one at
// every start so nothing about it needs rotating.
func (c *CA) ServerCert(hosts []string) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "vigil hub"},
		NotBefore:    c.now().Add(-time.Hour),
		NotAfter:     c.now().Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	return &KeyPair{Cert: [][]byte{der, c.Cert.Raw}, Key: key}, nil
}

// KeyPair is a certificate chain (DER, leaf first) and its key, ready for
// tls.Certificate.
type KeyPair struct {
	Cert [][]byte
	Key  crypto.Signer
}

// SignCSR issues an agent certificate for agentID from a PEM CSR. The
// subject is set from agentID, whatever the CSR asks for: the agent proves
// only that it holds the key.
func (c *CA) SignCSR(csrPEM []byte, agentID string) (*x509.Certificate, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("sign csr: %w: not a PEM certificate request", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign csr: %w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign csr: %w: %v", ErrBadCSR, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: agentID, OrganizationalUnit: []string{"vigil agent"}},
		NotBefore:    c.now().Add(-5 * time.Minute),
		NotAfter:     c.now().Add(AgentValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, csr.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("sign csr: %w", err)
	}
	return x509.ParseCertificate(der)
}

// VerifyClient checks a presented client chain against the CA at the CA's
// clock and returns the agent ID (the leaf's common name).
func (c *CA) VerifyClient(chain []*x509.Certificate) (string, *x509.Certificate, error) {
	if len(chain) == 0 {
		return "", nil, ErrNoClientCert
	}
	leaf := chain[0]
	t := c.now()
	if t.Before(leaf.NotBefore) || t.After(leaf.NotAfter) {
		return "", nil, ErrExpired
	}
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: c.pool, Intermediates: inter, CurrentTime: t,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return "", nil, ErrForeign
	}
	return leaf.Subject.CommonName, leaf, nil
}

// RenewAt is when an agent should renew a certificate: two thirds into its
// lifetime, leaving ten days of slack with the default validity for a hub
// that is down.
func RenewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life * 2 / 3)
}

// NewKeyAndCSR generates an agent key and a CSR for it.
func NewKeyAndCSR(name string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate agent key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create csr: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode agent key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// PEMCert encodes a certificate as PEM.
func PEMCert(c *x509.Certificate) []byte { return pemCert(c.Raw) }

// ParsePEMCert decodes the first certificate of a PEM block.
func ParsePEMCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("parse certificate: not a PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	return ParsePEMCert(b)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	return atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	return ParseKey(b)
}

// ParseKey decodes a PEM PKCS#8 private key.
func ParseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("parse key: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("parse key: not a signing key")
	}
	return s, nil
}
