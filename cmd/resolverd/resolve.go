package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/resolverd/resolverd/pkg/resolverclient"
)

// runResolve is `resolverd resolve`: one ResolveModel call through the Go client, for operators who
// want to see what a worker would get without grpcurl.
func runResolve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f := newFlags("resolve", getenv, stderr)
	addr := f.string("addr", "127.0.0.1:50051", "resolverd's gRPC address (host:port, or dns:///name:port to spread calls over every replica)")
	token := f.string("token", "", "bearer token with the worker scopes (prefer --token-file: flags show in ps)")
	tokenFile := f.string("token-file", "", "file holding the bearer token, e.g. .resolverd/worker.token")
	chat := f.string("chat", "", "the chat's id (required)")
	modelConfig := f.string("model-config", "", "the model config to resolve; empty for the chat's own")
	purposeName := f.string("purpose", "", "chat, subagent, personal_override, title or compaction (required)")
	useTLS := f.bool("tls", false, "talk TLS, trusting the system's roots or --tls-ca")
	tlsCA := f.string("tls-ca", "", "PEM CA that the server's certificate chains to (implies --tls)")
	tlsCert := f.string("tls-cert", "", "PEM client certificate for mutual TLS (implies --tls)")
	tlsKey := f.string("tls-key", "", "PEM private key of --tls-cert")
	plaintext := f.bool("insecure", false, "talk plaintext, token included (resolverd dev on loopback)")
	showSecret := f.bool("show-secret", false, "also print the API key itself")
	timeout := f.duration("timeout", resolverclient.DefaultTimeout, "the longest the call may take, retries included (0: no limit)")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	if err := require("chat", *chat); err != nil {
		return err
	}
	if err := require("purpose", *purposeName); err != nil {
		return err
	}
	purpose, err := resolverclient.ParsePurpose(*purposeName)
	if err != nil {
		return err
	}
	tok, err := readToken(*token, *tokenFile)
	if err != nil {
		return err
	}
	opts := []resolverclient.Option{resolverclient.WithToken(tok), resolverclient.WithTimeout(*timeout)}
	wantTLS := *useTLS || *tlsCA != "" || *tlsCert != "" || *tlsKey != ""
	switch {
	case wantTLS && *plaintext:
		return errors.New("--insecure excludes --tls, --tls-ca, --tls-cert and --tls-key")
	case *plaintext:
		opts = append(opts, resolverclient.WithInsecure())
	case wantTLS:
		cfg, err := clientTLS(*tlsCA, *tlsCert, *tlsKey)
		if err != nil {
			return err
		}
		opts = append(opts, resolverclient.WithTLS(cfg))
	default:
		return errors.New("choose --tls (with --tls-ca for a private CA) or --insecure (plaintext, e.g. resolverd dev on loopback)")
	}
	client, err := resolverclient.Dial(*addr, opts...)
	if err != nil {
		return err
	}
	defer client.Close()
	res, err := client.Resolve(ctx, strings.TrimSpace(*chat), strings.TrimSpace(*modelConfig), purpose)
	if err != nil {
		return err
	}
	printResolution(stdout, res, *showSecret)
	return nil
}

func readToken(token, file string) (string, error) {
	switch {
	case token != "" && file != "":
		return "", errors.New("give --token or --token-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read --token-file: %w", err)
		}
		token = string(b)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", errors.New("--token-file (or --token, RESOLVER_TOKEN_FILE, RESOLVER_TOKEN) is required")
	}
	return token, nil
}

func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// printResolution prints the decision, one "name: value" per line. The key appears only with
// showSecret.
func printResolution(w io.Writer, r *resolverclient.Resolution, showSecret bool) {
	p, m, c, d := r.Provider, r.ModelConfig, r.Credential, r.Decision
	line := func(name, format string, a ...any) {
		fmt.Fprintf(w, "%-22s"+format+"\n", append([]any{name + ":"}, a...)...)
	}
	line("provider", "%s (%s), type %s, id %s", p.Name, orDash(p.DisplayName), p.Type, p.ID)
	if p.BaseURL != "" {
		line("base url", "%s", p.BaseURL)
	}
	line("byok policy", "%s", p.BYOKPolicy)
	line("model", "%s (%s)", m.Model, orDash(m.DisplayName))
	line("model config", "%s", m.ID)
	line("context limit", "%d tokens, compact at %d%%", m.ContextLimit, m.CompressionThreshold)
	if len(m.Options) > 0 {
		if b, err := json.Marshal(m.Options); err == nil {
			line("options", "%s", b)
		}
	}
	line("requested config", "%s", orDash(d.RequestedModelConfigID))
	if d.Fallback {
		line("fallback", "yes (%s)", d.FallbackReason)
	} else {
		line("fallback", "no")
	}
	if d.UserKeySkippedReason != "" {
		line("own key skipped", "%s", d.UserKeySkippedReason)
	}
	line("credential source", "%s", c.Source)
	line("key id", "%s", orDash(c.KeyID))
	line("fingerprint", "%s", orDash(c.Fingerprint))
	switch {
	case c.APIKey.IsZero():
		line("api key", "- (ambient credentials of the worker's environment)")
	case showSecret:
		line("api key", "%s", c.APIKey.Reveal())
	default:
		line("api key", "%s (--show-secret prints it)", c.APIKey)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
