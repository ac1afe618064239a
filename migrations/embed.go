// Package migrations holds resolverd's schema as goose SQL migrations, embedded in the binary so
// that `resolverd migrate` needs no files beside it.
//
// Version 1 is the legacy layout (SPEC section 1) that existing deployments run today; later
// versions add the AI-provider tables and, in a later step, move the legacy data over.
package migrations

import "embed"

// FS holds the *.sql migrations.
//
//go:embed *.sql
var FS embed.FS
