// Command chatworker is what a chat worker does before it calls an LLM: it asks resolverd which
// model, at which provider, with which credential, using the Go client
// (github.com/resolverd/resolverd/pkg/resolverclient). Copy it into your worker.
//
// Against `make run` (resolverd dev on 127.0.0.1:50051 with its demo):
//
//	go run ./examples/chatworker -insecure
//	go run ./examples/chatworker -insecure -purpose title -model-config 20000000-0000-4000-8000-000000000002
//
// It prints the decision and the credential's source, key id and fingerprint: never the key. Then
// it runs the loop every worker should: call the provider, and when the provider refuses the key
// (429, 402, 401/403), report it (ReportCredentialOutcome, scope credential:report) and resolve
// again: resolverd answers with another of the provider's keys, on every replica within a second.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/resolverd/resolverd/pkg/resolverclient"
)

// demoChat is the chat `resolverd dev` seeds.
const demoChat = "40000000-0000-4000-8000-000000000001"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chatworker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("chatworker", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:50051", "resolverd's address; in Kubernetes dns:///resolverd.<namespace>.svc.cluster.local:50051")
	tokenFile := fs.String("token-file", ".resolverd/worker.token", "file holding the worker's bearer token (an rsv_ token, or a projected service-account token)")
	chat := fs.String("chat", demoChat, "the chat being served")
	modelConfig := fs.String("model-config", "", "the model config to use; empty for the chat's own")
	purposeName := fs.String("purpose", "chat", "chat, subagent, personal_override, title or compaction")
	plaintext := fs.Bool("insecure", false, "talk plaintext (resolverd dev on loopback); TLS otherwise")
	caFile := fs.String("tls-ca", "", "PEM CA that resolverd's certificate chains to (default: the system's roots)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	purpose, err := resolverclient.ParsePurpose(*purposeName)
	if err != nil {
		return err
	}
	// WithTokenFile follows the file: a projected Kubernetes service-account token (a JWT resolverd
	// verifies) is rewritten before it expires, and a long-running worker keeps up with it.
	opts := []resolverclient.Option{resolverclient.WithTokenFile(*tokenFile)}
	switch {
	case *plaintext:
		opts = append(opts, resolverclient.WithInsecure())
	case *caFile != "":
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("read the CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", *caFile)
		}
		opts = append(opts, resolverclient.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}

	// One client per process: it keeps connections to every resolverd replica and is safe for
	// concurrent use.
	client, err := resolverclient.Dial(*addr, opts...)
	if err != nil {
		return err
	}
	defer client.Close()

	// Resolve, call, report a refused key, resolve again: at most maxTries keys per request.
	const maxTries = 3
	for try := 1; ; try++ {
		res, err := client.Resolve(ctx, *chat, *modelConfig, purpose)
		var rerr *resolverclient.Error
		switch {
		case errors.Is(err, resolverclient.ErrUserKeyRequired):
			return fmt.Errorf("the chat's owner must add their own key for this provider first (%w)", err)
		case errors.Is(err, resolverclient.ErrUserKeyInvalid):
			return fmt.Errorf("the provider refused the chat owner's own key: they must put a new one (%w)", err)
		case errors.Is(err, resolverclient.ErrCredentialsCoolingDown) && errors.As(err, &rerr):
			// Every key of the provider is rate limited or out of quota: come back after RetryAfter,
			// or use a config of another provider meanwhile.
			return fmt.Errorf("every key of the provider is cooling down; the first is back in %s (%w)", rerr.RetryAfter.Round(time.Second), err)
		case errors.Is(err, resolverclient.ErrMissingScope) && errors.As(err, &rerr):
			return fmt.Errorf("the worker token lacks the scope %q (%w)", rerr.Scope(), err)
		case errors.Is(err, resolverclient.ErrUnavailable):
			return fmt.Errorf("resolverd is unavailable after %d attempts; try again later (%w)", attempts(err), err)
		case err != nil:
			return err
		}

		p, m, cr, d := res.Provider, res.ModelConfig, res.Credential, res.Decision
		fmt.Fprintf(stdout, "provider:     %s (type %s, id %s)\n", p.Name, p.Type, p.ID)
		fmt.Fprintf(stdout, "model:        %s (config %s, context %d tokens, compact at %d%%)\n", m.Model, m.ID, m.ContextLimit, m.CompressionThreshold)
		fmt.Fprintf(stdout, "credential:   %s\n", cr.Source)
		if cr.Source != resolverclient.CredentialSourceAmbient {
			fmt.Fprintf(stdout, "key id:       %s\n", cr.KeyID)
			fmt.Fprintf(stdout, "fingerprint:  %s\n", cr.Fingerprint)
		}
		if d.Fallback {
			fmt.Fprintf(stdout, "fallback:     yes, %s was unusable (%s)\n", d.RequestedModelConfigID, d.FallbackReason)
		}
		if d.UserKeySkippedReason != "" {
			fmt.Fprintf(stdout, "own key:      not used (%s)\n", d.UserKeySkippedReason)
		}

		// This is where the worker calls the provider. The key leaves its secret wrapper here and
		// only here; everything above may be logged.
		status, header := callModel(ctx, p.Type, p.BaseURL, m.Model, cr.APIKey.Reveal())
		outcome, retryAfter := resolverclient.OutcomeFromHTTP(status, header)
		switch {
		case outcome == resolverclient.OutcomeOK:
			return nil // no need to report a success: it would end a cooldown other workers started
		case outcome == resolverclient.OutcomeNone || cr.Source == resolverclient.CredentialSourceAmbient:
			return fmt.Errorf("the provider answered HTTP %d", status) // nothing resolverd can do about it
		}
		rep, err := client.Report(ctx, cr.KeyID, outcome, retryAfter)
		switch {
		case errors.Is(err, resolverclient.ErrRateLimited):
			// Over the token's rate of reports: other workers are reporting the same key.
		case err != nil:
			return fmt.Errorf("report the key: %w", err)
		default:
			fmt.Fprintf(stdout, "reported:     %s %s, now %s", rep.KeyID, outcome, rep.State)
			if !rep.CoolingUntil.IsZero() {
				fmt.Fprintf(stdout, " until %s", rep.CoolingUntil.UTC().Format(time.RFC3339))
			}
			fmt.Fprintln(stdout)
		}
		if try == maxTries {
			return fmt.Errorf("the provider refused %d keys in a row (HTTP %d)", try, status)
		}
	}
}

// callModel stands for the provider SDK call, e.g. for OpenAI
// openai.NewClient(option.WithAPIKey(apiKey), option.WithBaseURL(baseURL)), returning the HTTP
// status and headers of the provider's answer (the SDKs' error types carry them). An empty apiKey
// means ambient credentials (bedrock: the worker's own AWS role). Tests replace it.
var callModel = func(ctx context.Context, providerType, baseURL, model, apiKey string) (int, http.Header) {
	return http.StatusOK, http.Header{}
}

func attempts(err error) int {
	var e *resolverclient.Error
	if errors.As(err, &e) {
		return e.Attempts
	}
	return 1
}
