package resolverclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resolverd/resolverd/pkg/secret"
)

// TokenFileCheckEvery is how often, at most, WithTokenFile's file is looked at (a stat: its
// modification time, size and identity); it is read again only when one of them changed.
// Kubernetes rewrites a projected service-account token well before it expires (at 80% of its
// lifetime), so a second is far more than soon enough.
const TokenFileCheckEvery = time.Second

// WithTokenFile sends the token held in the file at path ("authorization: Bearer <token>"), and
// follows the file as it changes: a projected Kubernetes service-account token (a JWT that
// resolverd verifies, serve --jwt-issuer) is rewritten by the kubelet before it expires. The file
// is read by Dial (which fails when it is missing or empty), then looked at no more than once every
// TokenFileCheckEvery, and read again only when it changed. A read that fails or finds an empty
// file keeps the previous token (the kubelet swaps the file in atomically, but a mount can blink).
// The token travels only over TLS, unless WithInsecure is given too; it excludes WithToken.
func WithTokenFile(path string) Option {
	return func(o *options) { o.tokenFile = path }
}

// WithClientCertificate presents cert on every connection (mutual TLS): with resolverd's
// --tls-client-ca, a call without a token is authenticated by the certificate's workload identity
// (a SPIFFE URI SAN, or "cn:<common name>"). For a certificate that rotates, use
// WithClientCertificateFunc.
func WithClientCertificate(cert tls.Certificate) Option {
	return WithClientCertificateFunc(func() (*tls.Certificate, error) { return &cert, nil })
}

// WithClientCertificateFunc presents the certificate get returns, asked again at every TLS
// handshake, so a rotated certificate (cert-manager, the SPIFFE Workload API) is used by the next
// connection; resolverd closes connections after 5 minutes, so a rotation is in use within
// minutes. It excludes a client certificate given through WithTLS.
func WithClientCertificateFunc(get func() (*tls.Certificate, error)) Option {
	return func(o *options) { o.clientCert = get }
}

// clientTLS returns the TLS configuration with the client certificate of o, if any.
func (o *options) clientTLS(cfg *tls.Config) (*tls.Config, error) {
	if o.clientCert == nil {
		return cfg, nil
	}
	if len(cfg.Certificates) > 0 || cfg.GetClientCertificate != nil {
		return nil, errors.New("resolverclient: WithClientCertificate and a client certificate in WithTLS exclude each other")
	}
	cfg = cfg.Clone()
	get := o.clientCert
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := get()
		if err == nil && c == nil {
			err = errors.New("resolverclient: the client certificate function returned none")
		}
		return c, err
	}
	return cfg, nil
}

// fileToken is the token of WithTokenFile as gRPC per-call credentials.
type fileToken struct {
	path       string
	requireTLS bool

	token   atomic.Pointer[secret.String]
	checked atomic.Int64 // unix nanoseconds of the last look at the file

	mu   sync.Mutex  // one look at a time
	seen os.FileInfo // what the file was when last read
}

// newFileToken reads the file once; a missing, unreadable or empty file is an error now rather
// than UNAUTHENTICATED on every call.
func newFileToken(path string, requireTLS bool) (*fileToken, error) {
	f := &fileToken{path: path, requireTLS: requireTLS}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("resolverclient: WithTokenFile: %w", err)
	}
	if err := f.read(info); err != nil {
		return nil, err
	}
	f.checked.Store(time.Now().UnixNano())
	return f, nil
}

// read takes the token from the file, as last seen with info.
func (f *fileToken) read(info os.FileInfo) error {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("resolverclient: WithTokenFile: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return fmt.Errorf("resolverclient: WithTokenFile: %s is empty", f.path)
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }):
		// Never show the token itself.
		return fmt.Errorf("resolverclient: WithTokenFile: the token in %s holds spaces, control or non-ASCII characters", f.path)
	}
	s := secret.New(tok)
	f.token.Store(&s)
	f.seen = info
	return nil
}

// refresh looks at the file when TokenFileCheckEvery has passed, and reads it when it changed.
func (f *fileToken) refresh() {
	now := time.Now().UnixNano()
	last := f.checked.Load()
	if now-last < int64(TokenFileCheckEvery) || !f.checked.CompareAndSwap(last, now) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	info, err := os.Stat(f.path)
	if err != nil || (os.SameFile(info, f.seen) && info.ModTime().Equal(f.seen.ModTime()) && info.Size() == f.seen.Size()) {
		return // gone for a moment, or unchanged: keep the token
	}
	_ = f.read(info) // a failed read keeps the previous token; the next look tries again
}

func (f *fileToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	f.refresh()
	return map[string]string{"authorization": "Bearer " + f.token.Load().Reveal()}, nil
}

func (f *fileToken) RequireTransportSecurity() bool { return f.requireTLS }
