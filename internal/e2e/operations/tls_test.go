package operations_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/internal/tlsconfig"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a client certificate.
type pki struct {
	dir             string
	caPool          *x509.CertPool
	clientCert      tls.Certificate
	serverCertFile  string
	serverKeyFile   string
	caFile          string
	otherClientCert tls.Certificate // signed by another CA
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := selfSigned(t, "resolverd test CA")
	other, otherKey := selfSigned(t, "another CA")
	p := &pki{dir: dir, caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	srvDER, srvKey := issue(t, ca, caKey, "resolverd", true)
	p.serverCertFile = writePEM(t, dir, "server.pem", "CERTIFICATE", srvDER)
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p.serverKeyFile = writePEM(t, dir, "server.key", "EC PRIVATE KEY", keyDER)
	cliDER, cliKey := issue(t, ca, caKey, "chat-worker", false)
	p.clientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	oDER, oKey := issue(t, other, otherKey, "intruder", false)
	p.otherClientCert = tls.Certificate{Certificate: [][]byte{oDER}, PrivateKey: oKey}
	return p
}

func selfSigned(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool) ([]byte, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func healthOK(ctx context.Context, addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// livenessServing asks for the liveness service the Kubernetes liveness probe asks for.
func livenessServing(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: server.LivenessService})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("status %s", resp.GetStatus())
	}
	return nil
}

func TestTLSAndMutualTLS(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()
	t.Run("TLS", func(t *testing.T) {
		cfg, err := tlsconfig.Load(tlsconfig.Files{Cert: p.serverCertFile, Key: p.serverKeyFile})
		if err != nil {
			t.Fatal(err)
		}
		good := credentials.NewTLS(&tls.Config{RootCAs: p.caPool})
		m := metrics.New()
		e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) { c.TLS, c.Metrics = cfg, m }, ClientCreds: good})
		// The env's own client (TLS) minted tokens through AdminService: the listener speaks TLS.
		if _, err := e.Admin.ListProviders(e.AsAdmin(), &resolverv1.ListProvidersRequest{}); err != nil {
			t.Fatal(err)
		}
		// The certificate's expiry is a metric, for an alert before it runs out.
		leaf, err := tls.LoadX509KeyPair(p.serverCertFile, p.serverKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if want := fmt.Sprintf("resolverd_tls_certificate_not_after_seconds %g", float64(leaf.Leaf.NotAfter.Unix())); !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
		if err := healthOK(ctx, e.Addr, insecure.NewCredentials()); err == nil {
			t.Fatal("a plaintext client reached the TLS listener")
		}
		if err := healthOK(ctx, e.Addr, credentials.NewTLS(&tls.Config{})); err == nil {
			t.Fatal("a client that does not trust the CA connected")
		}
		// Probes that cannot speak TLS use the health-only listener.
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go e.Server.ServeHealth(hl) //nolint:errcheck // stopped by the env's cleanup
		if err := healthOK(ctx, hl.Addr().String(), insecure.NewCredentials()); err != nil {
			t.Fatalf("plaintext health listener: %v", err)
		}
		if err := livenessServing(ctx, hl.Addr().String()); err != nil {
			t.Fatalf("plaintext health listener, liveness: %v", err)
		}
		conn, err := grpc.NewClient(hl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = resolverv1.NewAdminServiceClient(conn).ListProviders(e.AsAdmin(), &resolverv1.ListProvidersRequest{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("the health-only listener answered an API call: %v", err)
		}
	})
	t.Run("mutual TLS", func(t *testing.T) {
		cfg, err := tlsconfig.Load(tlsconfig.Files{Cert: p.serverCertFile, Key: p.serverKeyFile, ClientCA: p.caFile})
		if err != nil {
			t.Fatal(err)
		}
		withCert := credentials.NewTLS(&tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.clientCert}})
		e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) { c.TLS = cfg }, ClientCreds: withCert})
		if err := healthOK(ctx, e.Addr, withCert); err != nil {
			t.Fatalf("a client with a certificate of the CA: %v", err)
		}
		if err := healthOK(ctx, e.Addr, credentials.NewTLS(&tls.Config{RootCAs: p.caPool})); err == nil {
			t.Fatal("a client without a certificate connected")
		}
		other := credentials.NewTLS(&tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.otherClientCert}})
		if err := healthOK(ctx, e.Addr, other); err == nil {
			t.Fatal("a client with a certificate of another CA connected")
		}
	})
}
