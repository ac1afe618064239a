package identity_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/identity"
)

// TestCertificateSubject: the URI SAN names the workload, and exactly one spiffe:// one must be
// there (any other URI could equal a JWT's sub); without any, the common name does, as
// "cn:<name>".
func TestCertificateSubject(t *testing.T) {
	uris := func(ss ...string) []*url.URL {
		var out []*url.URL
		for _, s := range ss {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, u)
		}
		return out
	}
	const spiffe = "spiffe://example.org/ns/chat/sa/worker"
	for _, tc := range []struct {
		name    string
		cert    x509.Certificate
		subject string // "" when refused
		refusal string
	}{
		{"one SPIFFE ID", x509.Certificate{URIs: uris(spiffe), Subject: pkix.Name{CommonName: "ignored"}}, spiffe, ""},
		{"one other URI (it could be a JWT's sub)", x509.Certificate{URIs: uris("https://workers.example/chat")}, "", "0 of them spiffe://"},
		{"a Kubernetes service account as a URI", x509.Certificate{URIs: uris("system:serviceaccount:chat:worker"), Subject: pkix.Name{CommonName: "w"}}, "", "0 of them spiffe://"},
		{"an opaque spiffe URI", x509.Certificate{URIs: uris("spiffe:example.org")}, "", "not of the form spiffe://"},
		{"a SPIFFE ID among others", x509.Certificate{URIs: uris("https://a.example", spiffe, "urn:x")}, spiffe, ""},
		{"two SPIFFE IDs", x509.Certificate{URIs: uris(spiffe, "spiffe://example.org/other")}, "", "2 of them spiffe://"},
		{"two URIs, no SPIFFE ID", x509.Certificate{URIs: uris("https://a.example", "https://b.example")}, "", "0 of them spiffe://"},
		{"common name", x509.Certificate{Subject: pkix.Name{CommonName: "chat-worker"}}, "cn:chat-worker", ""},
		{"nothing", x509.Certificate{DNSNames: []string{"worker.example"}}, "", "neither a URI SAN nor a common name"},
		{"a common name the rules refuse", x509.Certificate{Subject: pkix.Name{CommonName: "a\x00b"}}, "", "control"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := identity.CertificateSubject(&tc.cert)
			if tc.subject != "" {
				if err != nil || got != tc.subject {
					t.Fatalf("= %q, %v; want %q", got, err, tc.subject)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("= %q, %v; want a refusal saying %q", got, err, tc.refusal)
			}
		})
	}
}

// TestCertificateOnly: what a certificate names, and only it.
func TestCertificateOnly(t *testing.T) {
	for s, want := range map[string]bool{
		"spiffe://example.org/ns/chat/sa/worker": true,
		"Spiffe://example.org/x":                 true,
		"cn:worker":                              true,
		"CN:worker":                              true,
		"system:serviceaccount:chat:worker":      false,
		"https://workers.example/chat":           false,
		"spiffe:example.org":                     false,
		"cn":                                     false,
		"worker-cn:x":                            false,
	} {
		if got := identity.CertificateOnly(s); got != want {
			t.Errorf("CertificateOnly(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCheckSubject(t *testing.T) {
	for s, ok := range map[string]bool{
		"system:serviceaccount:chat:worker": true,
		"cn:Chat Worker":                    true,
		"cn:é✓":                             true,
		strings.Repeat("a", 1024):           true,
		strings.Repeat("a", 1025):           false,
		"":                                  false,
		" cn:x":                             false,
		"cn:x\t":                            false,
		"cn:\u200bx":                        false,
		"cn:\xff":                           false,
	} {
		if got := identity.CheckSubject(s) == ""; got != ok {
			t.Errorf("CheckSubject(%q) accepts = %v, want %v", s, got, ok)
		}
	}
}
