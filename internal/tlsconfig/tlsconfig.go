// Package tlsconfig builds the server's TLS configuration from PEM files: a certificate and key,
// and optionally the CA that client certificates must chain to (mutual TLS). All three are read
// again when their files change, so a rotated certificate or CA (a Kubernetes Secret update, a
// cert-manager renewal) is served without a restart. A changed file that does not load keeps the
// previous one in service and is logged at error level until it is fixed.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files names the PEM files.
type Files struct {
	Cert, Key string
	// ClientCA, when set, requires every caller to present a certificate signed by it.
	ClientCA string
	// Log hears of reloads and of changed files that do not load (nil: nobody).
	Log *slog.Logger
}

// recheckEvery bounds how often a handshake looks at the files' modification times.
var recheckEvery = 10 * time.Second

// Load checks the files and returns the configuration.
func Load(f Files) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.Log == nil {
		f.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &reloader{files: f}
	if err := r.loadCert(); err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.certificate, NextProtos: []string{"h2"}}
	if f.ClientCA == "" {
		return base, nil
	}
	if err := r.loadCA(); err != nil {
		return nil, err
	}
	base.ClientCAs, base.ClientAuth = r.ca, tls.RequireAndVerifyClientCert
	// Each handshake takes the CA pool in service now.
	cfg := base.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = r.clientCAs()
		return c, nil
	}
	return cfg, nil
}

// NotAfter is when the certificate in service expires (for a metric to alert on).
func NotAfter(cfg *tls.Config) (time.Time, bool) {
	if cfg == nil || cfg.GetCertificate == nil {
		return time.Time{}, false
	}
	c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || c == nil || c.Leaf == nil {
		return time.Time{}, false
	}
	return c.Leaf.NotAfter, true
}

func leafNotAfter(c *tls.Certificate) time.Time {
	if c == nil || c.Leaf == nil {
		return time.Time{}
	}
	return c.Leaf.NotAfter
}

type reloader struct {
	files Files

	mu        sync.Mutex
	cert      *tls.Certificate
	certMtime time.Time
	ca        *x509.CertPool
	caMtime   time.Time
	checked   time.Time
}

func (r *reloader) loadCert() error {
	c, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("load the TLS certificate %s and key %s: %w", r.files.Cert, r.files.Key, err)
	}
	r.cert, r.certMtime = &c, modified(r.files.Cert, r.files.Key)
	return nil
}

func (r *reloader) loadCA() error {
	pem, err := os.ReadFile(r.files.ClientCA)
	if err != nil {
		return fmt.Errorf("read --tls-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--tls-client-ca %s holds no PEM certificate", r.files.ClientCA)
	}
	r.ca, r.caMtime = pool, modified(r.files.ClientCA)
	return nil
}

func modified(paths ...string) time.Time {
	var latest time.Time
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return latest
}

// recheck reloads the files that changed since they were last loaded, at most every recheckEvery.
// A file that does not load leaves its predecessor in service; it is tried (and logged) again at
// the next recheck, so the error keeps showing until someone fixes the file.
func (r *reloader) recheck() {
	if time.Since(r.checked) < recheckEvery {
		return
	}
	r.checked = time.Now()
	if m := modified(r.files.Cert, r.files.Key); m.After(r.certMtime) {
		old := r.cert
		if err := r.loadCert(); err != nil {
			r.cert = old
			r.files.Log.Error("tls: the changed certificate does not load; the previous one stays in service",
				"cert", r.files.Cert, "key", r.files.Key, "not_after", leafNotAfter(old), "error", err)
		} else {
			r.files.Log.Info("tls: certificate reloaded", "cert", r.files.Cert, "not_after", leafNotAfter(r.cert))
		}
	}
	if r.files.ClientCA != "" {
		if m := modified(r.files.ClientCA); m.After(r.caMtime) {
			old := r.ca
			if err := r.loadCA(); err != nil {
				r.ca = old
				r.files.Log.Error("tls: the changed client CA does not load; the previous one stays in service",
					"client_ca", r.files.ClientCA, "error", err)
			} else {
				r.files.Log.Info("tls: client CA reloaded", "client_ca", r.files.ClientCA)
			}
		}
	}
}

func (r *reloader) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recheck()
	return r.cert, nil
}

func (r *reloader) clientCAs() *x509.CertPool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recheck()
	return r.ca
}
