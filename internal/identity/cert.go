package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// CertificateSubject names the workload identity a client certificate proves (docs/CONTRACT.md
// §3.1): its URI SAN — a SPIFFE ID such as spiffe://example.org/ns/chat/sa/worker — or, when it
// has none, "cn:" followed by its subject's common name.
//
// A certificate with URI SANs is taken only when exactly one of them is a spiffe:// URI, which is
// then the subject (an X.509 SVID carries exactly one SPIFFE ID; other URIs beside it do not name
// the workload). Any other certificate with URI SANs is refused rather than one of them picked:
// which one names the caller would be a guess, and a guess can be steered by whoever asks the CA
// for the certificate. A lone URI SAN of another scheme is refused too: it could equal a JWT's sub
// (Kubernetes' system:serviceaccount:… parses as a URI), and certificates and JWTs must never name
// the same identity (CertificateOnly).
//
// c must be the leaf of a chain the TLS handshake verified against the client CA; this function
// checks nothing about trust.
func CertificateSubject(c *x509.Certificate) (string, error) {
	var subject string
	switch n := len(c.URIs); {
	case n > 0:
		spiffe := 0
		for _, u := range c.URIs {
			if u.Scheme == "spiffe" {
				spiffe++
				subject = u.String()
			}
		}
		if spiffe != 1 {
			return "", fmt.Errorf("the client certificate has %d URI SANs, %d of them spiffe://: exactly one must be a spiffe:// ID (or, without URI SANs, the common name names the identity)", n, spiffe)
		}
		if !strings.HasPrefix(subject, spiffePrefix) { // spiffe:ID without the authority
			return "", fmt.Errorf("the client certificate's SPIFFE ID %q is not of the form spiffe://trust-domain/path", subject)
		}
	case c.Subject.CommonName != "":
		subject = "cn:" + c.Subject.CommonName
	default:
		return "", errors.New("the client certificate has neither a URI SAN nor a common name to name its workload identity")
	}
	if problem := CheckSubject(subject); problem != "" {
		return "", fmt.Errorf("the client certificate's identity %s", problem)
	}
	return subject, nil
}
