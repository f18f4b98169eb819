package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

const auditUsage = `usage: annals audit <subcommand>

subcommands:
  verify [-page-size N] [-json] [-checkpoints FILE [-public-key FILE] [-max-age D]]
                                 walk the audit log's hash chain from the first entry to the last,
                                 a page at a time, and report the first broken entry (a sequence
                                 gap, a prev_hash or hash mismatch); with -checkpoints, also check
                                 every signed checkpoint of FILE (public key: -public-key, else
                                 AUDITOR_CHECKPOINT_PUBLIC_KEY_FILE): the chain must hold each
                                 one's entry with its hash; exits 1 when the chain is broken or a
                                 checkpoint fails, naming the first one, and with -max-age when
                                 the newest checkpoint is older than D (its newest lines were
                                 removed, or the auditor stopped signing): a few times
                                 AUDITOR_CHECKPOINT_INTERVAL, e.g. 10m
  keygen [-key FILE] [-public-key FILE]
                                 write a new Ed25519 key pair for the auditor's checkpoints (PEM,
                                 mode 0600, never over an existing file; default
                                 audit-checkpoint.key and audit-checkpoint.pub)
  migrate [-member USER]         apply the audit log's migrations and grants (the auditor applies
                                 them at start too; the event store must be migrated): the log
                                 then belongs to the role annals_audit_owner, which no service
                                 uses; -member lets the database user USER, the auditor's, switch
                                 to the role annals_auditor. Run it as a superuser or a user with
                                 CREATEROLE, not as the services' user
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
		cps := fs.String("checkpoints", "", "file of signed checkpoints to check the chain against")
		pub := fs.String("public-key", "", "the checkpoints' public key (PEM)")
		maxAge := fs.Duration("max-age", 0, "fail when the newest checkpoint is older (0: never)")
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w: audit verify: %v", errUsage, err)
		}
		if fs.NArg() > 0 || *pageSize < 1 || ((*pub != "" || *maxAge != 0) && *cps == "") || *maxAge < 0 {
			return fmt.Errorf("%w: audit verify takes only -page-size N (N >= 1), -json and -checkpoints FILE [-public-key FILE] [-max-age D (D > 0)]\n\n%s", errUsage, auditUsage)
		}
		return auditVerify(ctx, loadConfig, verifyArgs{pageSize: *pageSize, asJSON: *asJSON, checkpoints: *cps, publicKey: *pub,
			maxAge: *maxAge}, stdout)
	case "keygen":
		fs := flag.NewFlagSet("annals audit keygen", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		key := fs.String("key", "audit-checkpoint.key", "where to write the private key")
		pub := fs.String("public-key", "audit-checkpoint.pub", "where to write the public key")
		if err := fs.Parse(rest); err != nil || fs.NArg() > 0 {
			return fmt.Errorf("%w: audit keygen takes only -key FILE and -public-key FILE\n\n%s", errUsage, auditUsage)
		}
		p, err := auditlog.GenerateKey(*key, *pub)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "private key %s (mode 0600): AUDITOR_CHECKPOINT_KEY_FILE of the auditor, from a secret, never elsewhere\n", *key)
		fmt.Fprintf(stdout, "public key  %s: AUDITOR_CHECKPOINT_PUBLIC_KEY_FILE of whoever verifies\n", *pub)
		fmt.Fprintf(stdout, "key id      %s\n", p.ID())
		return nil
	case "migrate":
		fs := flag.NewFlagSet("annals audit migrate", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		member := fs.String("member", "", "the database user the auditor connects as")
		if err := fs.Parse(rest); err != nil || fs.NArg() > 0 {
			return fmt.Errorf("%w: audit migrate takes only -member USER\n\n%s", errUsage, auditUsage)
		}
		return auditMigrate(ctx, loadConfig, *member, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	return fmt.Errorf("%w: unknown audit subcommand %q\n\n%s", errUsage, sub, auditUsage)
}

// verifyArgs are audit verify's flags.
type verifyArgs struct {
	pageSize               int
	asJSON                 bool
	checkpoints, publicKey string
	maxAge                 time.Duration // 0: any age
}

// auditVerify verifies the chain, and the checkpoints when asked, and prints the report. It
// only reads.
func auditVerify(ctx context.Context, loadConfig func() (*config.Config, error), a verifyArgs, stdout io.Writer) error {
	cfg, pool, err := openDatabase(ctx, loadConfig, "annals-audit-verify")
	if err != nil {
		return err
	}
	defer pool.Close()
	var (
		key *auditlog.PublicKey
		cps []auditlog.Checkpoint
	)
	if a.checkpoints != "" {
		if a.publicKey == "" {
			a.publicKey = cfg.Auditor.CheckpointPublicKeyFile
		}
		if a.publicKey == "" {
			return fmt.Errorf("%w: audit verify -checkpoints needs the public key: -public-key FILE or AUDITOR_CHECKPOINT_PUBLIC_KEY_FILE", errUsage)
		}
		if key, err = auditlog.LoadPublicKey(a.publicKey); err != nil {
			return err
		}
		if cps, err = auditlog.ReadCheckpoints(a.checkpoints); err != nil {
			return fmt.Errorf("%w: %s: %w", errCheckpointFailed, a.checkpoints, err)
		}
		if len(cps) == 0 {
			return fmt.Errorf("%w: %s holds no checkpoint", errCheckpointFailed, a.checkpoints)
		}
	}
	// As the auditor's role: the log belongs to a role of its own, which the database user may
	// not read as itself.
	role, err := auditlog.RolePool(ctx, pool, "")
	if err != nil {
		return err
	}
	defer role.Close()
	l := auditlog.New(role, auditlog.Options{})
	r, err := l.Verify(ctx, auditlog.VerifyOptions{PageSize: a.pageSize})
	var pe *pgconn.PgError
	if postgres.UndefinedTable(err) || (errors.As(err, &pe) && pe.Code == "22023") { // no table, or no role yet
		return errors.New("there is no audit log in this database (schema): start the auditor, or run `annals audit migrate`")
	}
	if err != nil {
		return err
	}
	out := verifyOutput{Report: r}
	if key != nil {
		i, b, err := l.CheckCheckpoints(ctx, key, cps)
		if err != nil {
			return err
		}
		newest := cps[len(cps)-1]
		age := time.Since(newest.At)
		out.Checkpoints = &checkpointsOutput{File: a.checkpoints, Count: len(cps), Newest: newest,
			AgeSeconds: age.Seconds(), MaxAgeSeconds: a.maxAge.Seconds(), Stale: a.maxAge > 0 && age > a.maxAge, FirstFailure: b}
		if b != nil {
			out.Checkpoints.FailedLine = i + 1
		}
	}
	if a.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printReport(stdout, r)
		printCheckpoints(stdout, out.Checkpoints)
	}
	if c := out.Checkpoints; c != nil && c.FirstFailure != nil {
		return fmt.Errorf("%w: line %d of %s, seq %d: %s", errCheckpointFailed, c.FailedLine, c.File, c.FirstFailure.Seq, c.FirstFailure.Problem)
	}
	if !r.OK {
		return fmt.Errorf("%w at seq %d (%s)", errChainBroken, r.Break.Seq, r.Break.Problem)
	}
	if c := out.Checkpoints; c != nil && c.Stale {
		return fmt.Errorf("%w than %s: seq %d at %s", errCheckpointStale, a.maxAge, c.Newest.Seq, c.Newest.At.Format(time.RFC3339))
	}
	return nil
}

// errCheckpointStale is the error of a verification whose newest checkpoint is older than
// -max-age: the file's newest lines were removed, or the auditor stopped signing.
var errCheckpointStale = errors.New("the newest checkpoint of the audit log is older")

// errCheckpointFailed is the error of a verification that found a checkpoint the chain does
// not hold, or one that is not signed by the key.
var errCheckpointFailed = errors.New("a checkpoint of the audit log fails")

// verifyOutput is audit verify's JSON: the report, with the checkpoints' outcome.
type verifyOutput struct {
	auditlog.Report
	Checkpoints *checkpointsOutput `json:"checkpoints,omitempty"`
}

// checkpointsOutput is the outcome of checking a checkpoint file.
type checkpointsOutput struct {
	File       string              `json:"file"`
	Count      int                 `json:"count"`
	Newest     auditlog.Checkpoint `json:"newest"`
	AgeSeconds float64             `json:"newest_age_seconds"`
	// MaxAgeSeconds is -max-age (0: none); Stale is true when the newest is older.
	MaxAgeSeconds float64         `json:"max_age_seconds,omitempty"`
	Stale         bool            `json:"stale,omitempty"`
	FailedLine    int             `json:"failed_line,omitempty"`
	FirstFailure  *auditlog.Break `json:"first_failure,omitempty"`
}

func printCheckpoints(w io.Writer, c *checkpointsOutput) {
	if c == nil {
		return
	}
	age := time.Duration(c.AgeSeconds * float64(time.Second)).Round(time.Second)
	if b := c.FirstFailure; b != nil {
		fmt.Fprintf(w, "checkpoint at line %d of %s fails: %s\n", c.FailedLine, c.File, b.Problem)
		fmt.Fprintf(w, "  %s\n", b.Detail)
		if b.Expected != "" || b.Found != "" {
			fmt.Fprintf(w, "  expected: %s\n  found:    %s\n", b.Expected, b.Found)
		}
	} else {
		fmt.Fprintf(w, "the chain holds all %d checkpoints of %s\n", c.Count, c.File)
	}
	fmt.Fprintf(w, "newest checkpoint: seq %d at %s (age %s)\n", c.Newest.Seq, c.Newest.At.Format(time.RFC3339), age)
	if c.Stale {
		maxAge := time.Duration(c.MaxAgeSeconds * float64(time.Second))
		fmt.Fprintf(w, "  older than -max-age %s: the file's newest lines were removed, or the auditor stopped signing\n", maxAge)
	}
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

func auditMigrate(ctx context.Context, loadConfig func() (*config.Config, error), member string, stdout io.Writer) error {
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
	if member != "" {
		if err := auditlog.GrantMember(ctx, pool, "", member); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s may switch to role %s\n", member, auditlog.DefaultRole)
	}
	for _, m := range applied {
		fmt.Fprintf(stdout, "applied %05d %s\n", m.Version, m.Name)
	}
	version, _, err := auditlog.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit log at version %d, owned by %s; role %s may insert and select\n", version, auditlog.Owner, auditlog.DefaultRole)
	return nil
}
