package main

import (
	"context"
	"io"

	"github.com/resolverd/resolverd/internal/devmode"
)

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f := newFlags("dev", getenv, stderr)
	dataDir := f.string("data-dir", ".resolverd", "directory for the private PostgreSQL cluster, tokens and the dev encryption key")
	listen := f.string("listen", "127.0.0.1:50051", "gRPC listen address")
	demo := f.bool("demo", true, "seed demo providers, keys, configs, a user and a chat")
	allowBYOK := f.bool("allow-byok", true, "let providers whose byok_policy allows it use the chat owner's own key")
	if err := f.parse(args); err != nil {
		return err
	}
	return devmode.Run(ctx, devmode.Options{
		DataDir: *dataDir, Listen: *listen, Demo: *demo, AllowBYOK: *allowBYOK, Stdout: stdout, Stderr: stderr,
	})
}
