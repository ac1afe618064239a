// Package tlsconfig builds the server's TLS configuration from PEM files: a certificate and key,
// and optionally the CA that client certificates must chain to (mutual TLS). The certificate is
// read again when its files change, so a rotated certificate (a Kubernetes Secret update, a
// cert-manager renewal) is served without a restart.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names the PEM files.
type Files struct {
	Cert, Key string
	// ClientCA, when set, requires every caller to present a certificate signed by it.
	ClientCA string
}

// recheckEvery bounds how often a handshake looks at the files' modification times.
const recheckEvery = 10 * time.Second

// Load checks the files and returns the configuration.
func Load(f Files) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	r := &reloader{files: f}
	if err := r.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get, NextProtos: []string{"h2"}}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read --tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s holds no PEM certificate", f.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

type reloader struct {
	files   Files
	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

func (r *reloader) load() error {
	c, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("load the TLS certificate %s and key %s: %w", r.files.Cert, r.files.Key, err)
	}
	r.cert, r.mtime = &c, r.modified()
	return nil
}

func (r *reloader) modified() time.Time {
	var latest time.Time
	for _, p := range []string{r.files.Cert, r.files.Key} {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return latest
}

// get serves the current certificate, reloading it when its files changed; a broken new pair
// keeps the old one in service.
func (r *reloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) > recheckEvery {
		r.checked = time.Now()
		if m := r.modified(); m.After(r.mtime) {
			old := r.cert
			if err := r.load(); err != nil {
				r.cert = old
			}
		}
	}
	return r.cert, nil
}
