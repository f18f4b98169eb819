package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

const auditUsage = `usage: annals audit <subcommand>

subcommands:
  verify [-page-size N] [-json]  walk the audit log's hash chain from the first entry to the last,
                                 a page at a time, and report the first broken entry (a sequence
                                 gap, a prev_hash or hash mismatch); exits 1 when the chain is broken
  migrate                        apply the audit log's migrations and grants (the auditor applies
                                 them at start too; the event store must be migrated)
`

// errChainBroken is the error of a verification that found the chain broken.
var errChainBroken = errors.New("the audit log's hash chain is broken")

// auditCmd runs the auditor's administration subcommands.
func auditCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: audit needs a subcommand\n\n%s", errUsage, auditUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "verify":
		fs := flag.NewFlagSet("annals audit verify", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		pageSize := fs.Int("page-size", auditlog.DefaultPageSize, "entries read per query")
		asJSON := fs.Bool("json", false, "print the report as JSON")
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w: audit verify: %v", errUsage, err)
		}
		if fs.NArg() > 0 || *pageSize < 1 {
			return fmt.Errorf("%w: audit verify takes only -page-size N (N >= 1) and -json", errUsage)
		}
		return auditVerify(ctx, loadConfig, *pageSize, *asJSON, stdout)
	case "migrate":
		if len(rest) > 0 {
			return fmt.Errorf("%w: audit migrate takes no arguments", errUsage)
		}
		return auditMigrate(ctx, loadConfig, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	return fmt.Errorf("%w: unknown audit subcommand %q\n\n%s", errUsage, sub, auditUsage)
}

// auditVerify verifies the chain and prints the report. It only reads.
func auditVerify(ctx context.Context, loadConfig func() (*config.Config, error), pageSize int, asJSON bool, stdout io.Writer) error {
	_, pool, err := openDatabase(ctx, loadConfig, "annals-audit-verify")
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := auditlog.New(pool, auditlog.Options{}).Verify(ctx, auditlog.VerifyOptions{PageSize: pageSize})
	if postgres.UndefinedTable(err) {
		return errors.New("there is no audit log in this database (schema): start the auditor, or run `annals audit migrate`")
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printReport(stdout, r)
	}
	if !r.OK {
		return fmt.Errorf("%w at seq %d (%s)", errChainBroken, r.Break.Seq, r.Break.Problem)
	}
	return nil
}

func printReport(w io.Writer, r auditlog.Report) {
	took := r.Took.Round(time.Millisecond)
	if r.OK {
		fmt.Fprintf(w, "verified %d entries in %s: the chain is intact\n", r.Checked, took)
		fmt.Fprintf(w, "head: seq %d hash %s\n", r.LastSeq, r.LastHash)
		return
	}
	b := r.Break
	fmt.Fprintf(w, "the chain is broken at seq %d: %s\n", b.Seq, b.Problem)
	fmt.Fprintf(w, "  %s\n", b.Detail)
	if b.Expected != "" || b.Found != "" {
		fmt.Fprintf(w, "  expected: %s\n  found:    %s\n", b.Expected, b.Found)
	}
	fmt.Fprintf(w, "%d entries before it are intact (last: seq %d hash %s); checked in %s\n", r.Checked, r.LastSeq, r.LastHash, took)
}

func auditMigrate(ctx context.Context, loadConfig func() (*config.Config, error), stdout io.Writer) error {
	_, pool, err := openDatabase(ctx, loadConfig, "annals-audit-migrate")
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	applied, err := auditlog.Migrate(ctx, pool, nil, "")
	if err != nil {
		return err
	}
	for _, m := range applied {
		fmt.Fprintf(stdout, "applied %05d %s\n", m.Version, m.Name)
	}
	version, _, err := auditlog.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit log at version %d; role %s may insert and select\n", version, auditlog.DefaultRole)
	return nil
}
