package resolverclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/resolverd/resolverd/pkg/resolverclient"
)

// A chat worker resolves the model of the chat it serves, then calls the provider with the key.
func Example() {
	token, err := os.ReadFile(".resolverd/worker.token") // written by `resolverd dev` / `make run`
	if err != nil {
		log.Fatal(err)
	}
	// In Kubernetes: "dns:///resolverd.<namespace>.svc.cluster.local:50051" and WithTLS.
	c, err := resolverclient.Dial("127.0.0.1:50051",
		resolverclient.WithToken(strings.TrimSpace(string(token))),
		resolverclient.WithInsecure(), // resolverd dev serves plaintext on loopback
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Resolve(context.Background(), "40000000-0000-4000-8000-000000000001", "", resolverclient.PurposeChat)
	var e *resolverclient.Error
	switch {
	case errors.Is(err, resolverclient.ErrUserKeyRequired):
		log.Fatal("ask the chat's owner to add their own key for this provider")
	case errors.Is(err, resolverclient.ErrMissingScope) && errors.As(err, &e):
		log.Fatalf("the worker token lacks the scope %s", e.Scope())
	case err != nil:
		log.Fatal(err)
	}
	// Log the fingerprint, never the key; hand the key to the provider's SDK alone.
	fmt.Printf("%s %s via %s key %s (fingerprint %s)\n", res.Provider.Name, res.ModelConfig.Model,
		res.Credential.Source, res.Credential.KeyID, res.Credential.Fingerprint)
	apiKey := res.Credential.APIKey.Reveal()
	_ = apiKey // e.g. openai.NewClient(option.WithAPIKey(apiKey), option.WithBaseURL(res.Provider.BaseURL))
}
