package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// idCA is a throwaway certificate authority, in memory.
type idCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newIDCA(t *testing.T) *idCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "workload CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &idCA{cert: cert, key: key, pool: pool}
}

// issue signs a certificate: for the server (127.0.0.1) or for a client named by cn and uris.
func (ca *idCA) issue(t *testing.T, serverCert bool, cn string, uris ...string) tls.Certificate {
	t.Helper()
	return ca.issueUntil(t, time.Now().Add(time.Hour), serverCert, cn, uris...)
}

// issueUntil is issue with the certificate's NotAfter.
func (ca *idCA) issueUntil(t *testing.T, notAfter time.Time, serverCert bool, cn string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if serverCert {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.ParseIP("127.0.0.1")}
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// client is a connection to addr presenting cert.
func (ca *idCA) client(t *testing.T, addr string, cert tls.Certificate) resolverv1.ResolverServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return resolverv1.NewResolverServiceClient(conn)
}

// TestClientCertificateIdentity: with client certificates required (serve --tls-client-ca), a
// call without authorization metadata is authenticated by its certificate: a bound SPIFFE ID (the
// URI SAN) or "cn:<common name>" resolves with no bearer token; an unbound one is UNKNOWN_IDENTITY
// naming its subject; a certificate with two SPIFFE IDs is refused; a token, when sent, decides.
func TestClientCertificateIdentity(t *testing.T) {
	ca := newIDCA(t)
	const spiffe = "spiffe://example.org/ns/chat/sa/chat-worker"
	worker := ca.issue(t, false, "chat-worker", spiffe)
	serverCert := ca.issue(t, true, "resolverd")
	w := testenv.NewWorld(t, testenv.Options{
		Configure: func(c *server.Config) {
			c.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.pool,
				ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
		},
		// The admin's connection presents the worker's certificate too: its token decides.
		ClientCreds: credentials.NewTLS(&tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{worker}}),
	})
	chat := idFixture(w)
	idBind(t, w.Env, spiffe, rbac.WorkerScopes...)
	idBind(t, w.Env, "cn:legacy-worker", rbac.WorkerScopes...)
	req := &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT}

	res, err := ca.client(t, w.Addr, worker).ResolveModel(context.Background(), req)
	if err != nil || res.GetCredential().GetApiKey() != "sk-identity-central" {
		t.Fatalf("a bound SPIFFE certificate without a token: %v %v", res, err)
	}
	if _, err := ca.client(t, w.Addr, ca.issue(t, false, "legacy-worker")).ResolveModel(context.Background(), req); err != nil {
		t.Fatalf("a bound common name without a token: %v", err)
	}
	stranger := ca.client(t, w.Addr, ca.issue(t, false, "x", "spiffe://example.org/ns/other/sa/stranger"))
	_, err = stranger.ResolveModel(context.Background(), req)
	if info := testenv.WantReason(t, err, codes.Unauthenticated, "UNKNOWN_IDENTITY"); info.GetMetadata()["subject"] != "spiffe://example.org/ns/other/sa/stranger" {
		t.Errorf("metadata %v, want the SPIFFE ID", info.GetMetadata())
	}
	_, err = ca.client(t, w.Addr, ca.issue(t, false, "two", spiffe, "spiffe://example.org/ns/chat/sa/other")).ResolveModel(context.Background(), req)
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	// A token on the stranger's connection is the caller.
	if _, err := stranger.ResolveModel(w.AsWorker(), req); err != nil {
		t.Fatalf("a worker token over an unbound certificate: %v", err)
	}
	// The resolution by certificate is recorded under its SPIFFE ID.
	testenv.Within(t, 5*time.Second, "the awaited state", func() error {
		ev, err := w.Admin.ListAuditEvents(w.AsAdmin(), &resolverv1.ListAuditEventsRequest{Action: "ResolveModel", ChatId: chat})
		if err != nil {
			return err
		}
		for _, e := range ev.GetEvents() {
			if e.GetSubject() == spiffe {
				return nil
			}
		}
		return errors.New("no resolution recorded under the SPIFFE ID yet")
	})
}

// TestCertificateAndJWTSubjectsNeverMeet: with both JWTs and client certificates on, neither
// authority can speak for an identity bound for the other. The attacker holds the JWT issuer (it
// signs any sub) or the client CA (it issues any SAN), and the bindings were made by an admin for
// the other kind of credential: a JWT whose sub is a bound SPIFFE ID or "cn:" name, and a
// certificate whose lone URI SAN is a bound JWT sub, are refused before any binding is read.
func TestCertificateAndJWTSubjectsNeverMeet(t *testing.T) {
	ca := newIDCA(t)
	iss := idIssuer(t)
	const spiffe = "spiffe://example.org/ns/chat/sa/chat-worker"
	serverCert := ca.issue(t, true, "resolverd")
	w := testenv.NewWorld(t, testenv.Options{
		Configure: func(c *server.Config) {
			idJWT(iss)(c)
			c.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.pool,
				ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
		},
		ClientCreds: credentials.NewTLS(&tls.Config{RootCAs: ca.pool}),
	})
	chat := idFixture(w)
	for _, subject := range []string{spiffe, "cn:chat-worker", idWorker} {
		idBind(t, w.Env, subject, rbac.WorkerScopes...)
	}
	req := &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT}

	// Each binding works for its own kind of credential.
	if _, err := idResolve(w.Env, iss.Token(idWorker, idAudience, time.Hour), chat); err != nil {
		t.Fatalf("the JWT of a bound service account: %v", err)
	}
	if _, err := ca.client(t, w.Addr, ca.issue(t, false, "x", spiffe)).ResolveModel(context.Background(), req); err != nil {
		t.Fatalf("the certificate of a bound SPIFFE ID: %v", err)
	}
	if _, err := ca.client(t, w.Addr, ca.issue(t, false, "chat-worker")).ResolveModel(context.Background(), req); err != nil {
		t.Fatalf("the certificate of a bound common name: %v", err)
	}

	// The JWT issuer claims the certificates' identities.
	for _, sub := range []string{spiffe, "cn:chat-worker", "CN:chat-worker", "SPIFFE://example.org/ns/chat/sa/chat-worker"} {
		t.Run("JWT sub "+sub, func(t *testing.T) {
			_, err := idResolve(w.Env, iss.Token(sub, idAudience, time.Hour), chat)
			testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "only a certificate can prove") {
				t.Errorf("message %q, want it to say why", msg)
			}
		})
	}
	// The client CA claims the JWT's identity, alone or beside a common name.
	for _, c := range []tls.Certificate{ca.issue(t, false, "", idWorker), ca.issue(t, false, "chat-worker", idWorker)} {
		_, err := ca.client(t, w.Addr, c).ResolveModel(context.Background(), req)
		testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "0 of them spiffe://") {
			t.Errorf("message %q, want it to say why", msg)
		}
	}
}

// TestExpiredClientCertificateRefused: a certificate names its caller only until its NotAfter
// (docs/CONTRACT.md §3.1). The TLS handshake checks the validity once, when the connection opens,
// and connections live for minutes (§15): before the fix, every call on a connection opened just
// before the certificate expired kept authenticating as its identity after it had expired, with
// the binding's scopes (keys served), until the server closed the connection.
func TestExpiredClientCertificateRefused(t *testing.T) {
	ca := newIDCA(t)
	const spiffe = "spiffe://example.org/ns/chat/sa/short-lived"
	serverCert := ca.issue(t, true, "resolverd")
	w := testenv.NewWorld(t, testenv.Options{
		Configure: func(c *server.Config) {
			c.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.pool,
				ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
		},
		ClientCreds: credentials.NewTLS(&tls.Config{RootCAs: ca.pool}),
	})
	chat := idFixture(w)
	idBind(t, w.Env, spiffe, rbac.WorkerScopes...)
	req := &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT}

	// X.509 keeps whole seconds: the certificate is valid for the next 5 to 6 seconds, room for
	// the first call's handshake on a slow machine.
	notAfter := time.Now().Add(6 * time.Second).Truncate(time.Second)
	client := ca.client(t, w.Addr, ca.issueUntil(t, notAfter, false, "x", spiffe))
	if _, err := client.ResolveModel(context.Background(), req); err != nil {
		t.Fatalf("the certificate while valid: %v", err)
	}
	time.Sleep(time.Until(notAfter) + 1100*time.Millisecond)
	// The same connection: no new handshake.
	res, err := client.ResolveModel(context.Background(), req)
	if err == nil {
		t.Fatalf("a certificate that expired at %s still resolved (api key served: %t)", notAfter.UTC().Format(time.RFC3339), res.GetCredential().GetApiKey() != "")
	}
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "expired") {
		t.Errorf("message %q, want it to say the certificate expired", msg)
	}
}
