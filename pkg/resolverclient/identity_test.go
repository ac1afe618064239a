package resolverclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/identity/identitytest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	rc "github.com/resolverd/resolverd/pkg/resolverclient"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// sentToken calls once and returns the bearer value the server received.
func sentToken(t *testing.T, c *rc.Client, f *fake) string {
	t.Helper()
	if _, err := c.Resolve(context.Background(), "chat-1", "", rc.PurposeChat); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	return strings.Join(calls[len(calls)-1].md.Get("authorization"), ",")
}

// TestTokenFileFollowsTheFile: the token is read from the file, read again once the file changed
// (rewritten in place or swapped in, as the kubelet does), not while it is unchanged, and kept
// while the file is missing or empty for a moment.
func TestTokenFileFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	write := func(tok string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wait := func() { time.Sleep(rc.TokenFileCheckEvery + 100*time.Millisecond) }
	write("tok-1")
	f := &fake{}
	c := dial(t, serve(t, f), rc.WithTokenFile(path))
	if got := sentToken(t, c, f); got != "Bearer tok-1" {
		t.Fatalf("sent %q", got)
	}

	write("tok-22")
	wait()
	if got := sentToken(t, c, f); got != "Bearer tok-22" {
		t.Fatalf("after the file changed: sent %q", got)
	}

	// The same size and modification time in the same file: unchanged as far as a stat can tell,
	// so not read again (a cheap look, not a read per call).
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	write("tok-33")
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	wait()
	if got := sentToken(t, c, f); got != "Bearer tok-22" {
		t.Fatalf("a file unchanged by stat was read again: sent %q", got)
	}

	// Swapped in atomically, as Kubernetes updates a projected volume.
	next := filepath.Join(dir, "token.next")
	if err := os.WriteFile(next, []byte("tok-44"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	wait()
	if got := sentToken(t, c, f); got != "Bearer tok-44" {
		t.Fatalf("after a swap: sent %q", got)
	}

	// Missing or empty for a moment: the last token stays.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	wait()
	if got := sentToken(t, c, f); got != "Bearer tok-44" {
		t.Fatalf("while the file is missing: sent %q", got)
	}
	write("")
	wait()
	if got := sentToken(t, c, f); got != "Bearer tok-44" {
		t.Fatalf("while the file is empty: sent %q", got)
	}
}

func TestTokenFileRefusals(t *testing.T) {
	dir := t.TempDir()
	empty, good := filepath.Join(dir, "empty"), filepath.Join(dir, "good")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("tok-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]rc.Option{
		"missing file":             {rc.WithInsecure(), rc.WithTokenFile(filepath.Join(dir, "nope"))},
		"empty file":               {rc.WithInsecure(), rc.WithTokenFile(empty)},
		"token and token file":     {rc.WithInsecure(), rc.WithToken("tok-secret"), rc.WithTokenFile(good)},
		"certificate in plaintext": {rc.WithInsecure(), rc.WithClientCertificate(tls.Certificate{})},
		"two client certificates":  {rc.WithTLS(&tls.Config{Certificates: []tls.Certificate{{}}}), rc.WithClientCertificate(tls.Certificate{})},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := rc.Dial("127.0.0.1:1", opts...)
			if err == nil {
				c.Close()
				t.Fatal("Dial accepted it")
			}
			if strings.Contains(err.Error(), "tok-secret") {
				t.Fatalf("the error shows the token: %v", err)
			}
		})
	}
}

// TestWorkloadIdentityAgainstTheServer: against the real server, a projected-token file holding a
// JWT of the configured issuer resolves, and so does a client certificate with a SPIFFE ID and no
// token at all; the rotating certificate function is asked at the handshake.
func TestWorkloadIdentityAgainstTheServer(t *testing.T) {
	iss, err := identitytest.NewIssuer("RS256")
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	ca, caKey := clientCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	const spiffe = "spiffe://example.org/ns/chat/sa/chat-worker"
	worker := leaf(t, ca, caKey, false, spiffe)
	e := testenv.New(t, testenv.Options{
		Configure: func(c *server.Config) {
			c.JWT = &identity.JWTOptions{Issuer: iss.URL, Audience: "resolverd"}
			c.TLS = &tls.Config{Certificates: []tls.Certificate{leaf(t, ca, caKey, true, "")}, ClientCAs: pool,
				ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
		},
		// The admin's own connection: the server wants a certificate on every connection.
		ClientCreds: credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{worker}}),
	})
	chat := identityFixture(t, e)
	for _, s := range []string{spiffe, "system:serviceaccount:chat:chat-worker"} {
		if _, err := e.Admin.PutWorkloadIdentity(e.AsAdmin(), &resolverv1.PutWorkloadIdentityRequest{Subject: s, Scopes: workerScopeNames()}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(iss.Token("system:serviceaccount:chat:chat-worker", "resolverd", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	// The server requires a client certificate on every connection; the token decides the caller.
	byToken, err := rc.Dial(e.Addr, rc.WithTLS(tlsCfg), rc.WithTokenFile(path), rc.WithClientCertificate(leaf(t, ca, caKey, false, "spiffe://example.org/ns/chat/sa/unbound")))
	if err != nil {
		t.Fatal(err)
	}
	defer byToken.Close()
	if _, err := byToken.Resolve(context.Background(), chat, "", rc.PurposeChat); err != nil {
		t.Fatalf("a projected token file: %v", err)
	}

	var asked atomic.Int32
	byCert, err := rc.Dial(e.Addr, rc.WithTLS(tlsCfg), rc.WithClientCertificateFunc(func() (*tls.Certificate, error) {
		asked.Add(1)
		return &worker, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer byCert.Close()
	if _, err := byCert.Resolve(context.Background(), chat, "", rc.PurposeChat); err != nil {
		t.Fatalf("a client certificate without a token: %v", err)
	}
	if asked.Load() == 0 {
		t.Error("the certificate function was never asked")
	}
	if tlsCfg.GetClientCertificate != nil {
		t.Error("Dial changed the caller's tls.Config")
	}
}

func workerScopeNames() []string {
	out := make([]string, len(rbac.WorkerScopes))
	for i, s := range rbac.WorkerScopes {
		out[i] = string(s)
	}
	return out
}

// identityFixture is a chat that resolves.
func identityFixture(t *testing.T, e *testenv.Env) string {
	t.Helper()
	w := &testenv.World{T: t, Env: e}
	p := w.Provider("openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(p.GetId(), "sk-client-identity")
	c := w.Config(p.GetId(), "gpt-4o", true)
	return w.Chat(w.User("alice").GetId(), c.GetId()).GetId()
}

func clientCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// leaf signs a server certificate for 127.0.0.1, or a client certificate with the URI SAN uri.
func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serverCert bool, uri string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if serverCert {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.ParseIP("127.0.0.1")}
	}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
