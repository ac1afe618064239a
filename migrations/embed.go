// Package migrations holds resolverd's schema as goose SQL migrations, embedded in the binary so
// that `resolverd migrate` needs no files beside it.
//
// Version 1 is the legacy layout (docs/CONTRACT.md §1) that existing deployments run today; later
// versions add the AI-provider tables and, in a later step, move the legacy data over.
package migrations

import "embed"

// FS holds the numbered *.sql migrations that goose runs, and cutover/, the SQL of the legacy
// cutover (version 4), which internal/db runs as a Go migration so that `resolverd migrate
// preflight` shares its checks.
//
//go:embed *.sql cutover/*.sql
var FS embed.FS
