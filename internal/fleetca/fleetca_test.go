package fleetca

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	dir := t.TempDir()
	ca, err := LoadOrCreate(dir, clock)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreate(dir, clock)
	if err != nil || again.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("reloaded CA differs: %v", err)
	}
	other, _ := LoadOrCreate(t.TempDir(), clock)
	_, csr, err := NewKeyAndCSR("asks-for-another-name")
	if err != nil {
		t.Fatal(err)
	}
	crt, err := ca.SignCSR(csr, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.SignCSR(csr, "agent-1")
	srv, _ := ca.ServerCert(nil)
	srvCert, _ := x509.ParseCertificate(srv.Cert[0])
	tests := []struct {
		name  string
		chain []*x509.Certificate
		at    time.Time
		id    string
		err   error
	}{
		{"valid", []*x509.Certificate{crt}, now, "agent-1", nil},
		{"none", nil, now, "", ErrNoClientCert},
		{"expired", []*x509.Certificate{crt}, now.Add(AgentValidity + time.Hour), "", ErrExpired},
		{"not yet valid", []*x509.Certificate{crt}, now.Add(-time.Hour), "", ErrExpired},
		{"other CA", []*x509.Certificate{foreign}, now, "", ErrForeign},
		{"server certificate as client", []*x509.Certificate{srvCert}, now, "", ErrForeign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now0 := now
			now = tc.at
			defer func() { now = now0 }()
			id, _, err := ca.VerifyClient(tc.chain)
			if !errors.Is(err, tc.err) || id != tc.id {
				t.Fatalf("got %q, %v; want %q, %v", id, err, tc.id, tc.err)
			}
		})
	}
	if got := RenewAt(crt); !got.After(crt.NotBefore.Add(AgentValidity/2)) || !got.Before(crt.NotAfter) {
		t.Errorf("renew at %s, not between half and end of %s..%s", got, crt.NotBefore, crt.NotAfter)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"} {
		if _, err := ca.SignCSR([]byte(bad), "x"); !errors.Is(err, ErrBadCSR) {
			t.Errorf("SignCSR(%q): %v, want ErrBadCSR", bad, err)
		}
	}
}
