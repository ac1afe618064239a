package tlsconfig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64 = 100

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &authority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf (PEM certificate and key) valid until notAfter.
func (a *authority) issue(t *testing.T, cn string, server bool, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// write replaces a file and dates it later than anything before, as a Secret update would.
var stamp = time.Now()

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	stamp = stamp.Add(time.Second)
	if err := os.Chtimes(path, stamp, stamp); err != nil {
		t.Fatal(err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *syncBuf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// handshake runs a TLS handshake between cfg and a client over loopback; it returns the server
// certificate the client saw, or the handshake's error.
func handshake(cfg *tls.Config, client *tls.Config) (*x509.Certificate, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer s.Close()
		ts := tls.Server(s, cfg)
		err = ts.Handshake()
		if err == nil {
			_, err = ts.Read(make([]byte, 1)) // the client's one byte: mutual TLS is checked by now
		}
		errc <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, client)
	err = tc.Handshake()
	if err == nil {
		_, err = tc.Write([]byte{1})
	}
	if serr := <-errc; err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	return tc.ConnectionState().PeerCertificates[0], nil
}

func TestCertificateRenewalAndBrokenFiles(t *testing.T) {
	defer func(d time.Duration) { recheckEvery = d }(recheckEvery)
	recheckEvery = 0
	dir := t.TempDir()
	ca := newAuthority(t, "ca")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	exp1, exp2 := time.Now().Add(2*time.Hour).Truncate(time.Second), time.Now().Add(48*time.Hour).Truncate(time.Second)
	c1, k1 := ca.issue(t, "resolverd", true, exp1)
	write(t, certFile, c1)
	write(t, keyFile, k1)
	var logs syncBuf
	cfg, err := Load(Files{Cert: certFile, Key: keyFile, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := &tls.Config{RootCAs: roots, ServerName: "resolverd"}
	served := func() time.Time {
		t.Helper()
		c, err := handshake(cfg, client)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return c.NotAfter
	}
	if got := served(); !got.Equal(exp1) {
		t.Fatalf("served a certificate expiring %v, want %v", got, exp1)
	}
	if na, ok := NotAfter(cfg); !ok || !na.Equal(exp1) {
		t.Fatalf("NotAfter = %v %v", na, ok)
	}

	// Renewal: new pair on disk, served from the next handshake, reported by NotAfter, logged.
	c2, k2 := ca.issue(t, "resolverd", true, exp2)
	write(t, certFile, c2)
	write(t, keyFile, k2)
	if got := served(); !got.Equal(exp2) {
		t.Fatalf("after renewal: served %v, want %v", got, exp2)
	}
	if na, _ := NotAfter(cfg); !na.Equal(exp2) {
		t.Fatalf("after renewal: NotAfter = %v", na)
	}
	if !strings.Contains(logs.String(), "certificate reloaded") {
		t.Errorf("renewal not logged:\n%s", logs.String())
	}

	// A broken renewal (half-written certificate): the renewed one stays in service, and the
	// error is logged at every recheck until the file is fixed.
	write(t, certFile, c2[:len(c2)/2])
	for range 2 {
		if got := served(); !got.Equal(exp2) {
			t.Fatalf("with a broken file: served %v, want the previous %v", got, exp2)
		}
	}
	if n := strings.Count(logs.String(), "does not load"); n != 2 || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("broken certificate logged %d times, want 2 errors:\n%s", n, logs.String())
	}
	write(t, certFile, c2)
	if got := served(); !got.Equal(exp2) {
		t.Fatalf("after the fix: served %v", got)
	}
}

func TestClientCARotation(t *testing.T) {
	defer func(d time.Duration) { recheckEvery = d }(recheckEvery)
	recheckEvery = 0
	dir := t.TempDir()
	serverCA, oldCA, newCA := newAuthority(t, "server-ca"), newAuthority(t, "old-client-ca"), newAuthority(t, "new-client-ca")
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")
	c, k := serverCA.issue(t, "resolverd", true, time.Now().Add(time.Hour))
	write(t, certFile, c)
	write(t, keyFile, k)
	write(t, caFile, oldCA.pem)
	var logs syncBuf
	cfg, err := Load(Files{Cert: certFile, Key: keyFile, ClientCA: caFile, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	clientOf := func(a *authority) *tls.Config {
		cp, kp := a.issue(t, "worker", false, time.Now().Add(time.Hour))
		pair, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: roots, ServerName: "resolverd", Certificates: []tls.Certificate{pair}}
	}
	oldClient, newClient := clientOf(oldCA), clientOf(newCA)
	if _, err := handshake(cfg, oldClient); err != nil {
		t.Fatalf("a client of the configured CA: %v", err)
	}
	if _, err := handshake(cfg, newClient); err == nil {
		t.Fatal("a client of another CA got in")
	}
	if _, err := handshake(cfg, &tls.Config{RootCAs: roots, ServerName: "resolverd"}); err == nil {
		t.Fatal("a client without a certificate got in")
	}

	write(t, caFile, newCA.pem) // the CA rotates
	if _, err := handshake(cfg, newClient); err != nil {
		t.Fatalf("after rotating the CA, a client of the new one: %v", err)
	}
	if _, err := handshake(cfg, oldClient); err == nil {
		t.Fatal("after rotating the CA, a client of the old one still got in")
	}
	write(t, caFile, []byte("not a certificate"))
	if _, err := handshake(cfg, newClient); err != nil {
		t.Fatalf("a broken CA file must keep the previous CA in service: %v", err)
	}
	if !strings.Contains(logs.String(), "client CA reloaded") || !strings.Contains(logs.String(), "the changed client CA does not load") {
		t.Errorf("CA reloads not logged:\n%s", logs.String())
	}
}
