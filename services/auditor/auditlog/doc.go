// Package auditlog is the auditor's tamper-evident audit log in PostgreSQL: every event of
// every topic, appended once to a hash chain, with the query and the verification of the
// chain.
//
// # Entries
//
// An Entry records who caused an event (correlation id, causation id, metadata), what it was
// (type, stream id, stream version, global position, schema version, data, event id), when
// (recorded_at from the writer, audited_at when the auditor appended it) and where the
// auditor read it (topic, partition, offset). Entries are numbered 1, 2, 3, ... (Seq) without
// gaps, in the order they were appended; a stream's events keep their order, events of
// different streams interleave as their batches commit.
//
// # The chain
//
// Each entry holds the hash of the entry before it (PrevHash; Genesis, 32 zero bytes, for
// entry 1) and its own Hash, SHA-256 over its canonical encoding (Entry.Canonical documents
// it field by field). The encoding covers every column, Seq and PrevHash included, with each
// field length-prefixed, so changing, removing, inserting or reordering any entry breaks the
// chain at that point, and Verify reports the first broken entry. Removing the newest entries
// leaves a valid shorter chain; Report.LastSeq and LastHash, kept elsewhere, catch that.
//
// Appends are serialised: each takes a transaction-level advisory lock keyed by the log
// table's oid, reads the head (the last entry) and appends after it, all in the caller's
// transaction, so that concurrent consumers and processes never fork the chain (and
// the primary key on Seq would refuse a fork). The lock is held until the transaction ends,
// so appends of a batch go in one multi-row statement with the hashes computed in Go.
//
// # Checkpoints
//
// The chain alone cannot show that its newest entries were removed, or that whoever can write
// to the table rewrote an entry and every entry after it: both leave a valid chain. A
// Checkpoint anchors the chain outside PostgreSQL: a Checkpointer verifies the entries
// appended since the newest checkpoint, signs the head (seq, hash, time, key id) with an
// Ed25519 private key, appends it to a file as one line of JSON (synced) and logs it. It never
// signs a chain that does not hold the newest checkpoint. Anyone with the public key checks a
// chain against the checkpoints (CheckCheckpoints); a Log with an Anchor checks every line of
// its file (signatures, and seqs that never go back) and every Verify against the newest one,
// so that an auditor restarted on a truncated, rewritten or replaced table reports it broken
// instead of intact. A file absent or empty over a chain with entries is started anew, but
// counted and logged as an error: a lost file vouches for nothing.
//
// # Exactly once
//
// An event id appears at most once in the log (a unique index). An append skips the events
// the log has already, checked under the chain's lock, so a redelivered event is not recorded
// twice and the chain stays valid; the log keeps the first delivery's topic, partition and
// offset.
//
// # Privileges
//
// Migrate hands the log's table and its trigger function to Owner (annals_audit_owner,
// NOLOGIN), a role no service uses, creates the auditor's role (DefaultRole, NOLOGIN) and
// grants it exactly INSERT and SELECT on the log; RolePool opens a pool whose connections
// switch to it. Everything this package does after Migrate runs on such a pool, so even a bug
// in it cannot UPDATE or DELETE an entry: PostgreSQL refuses. A trigger refuses UPDATE,
// DELETE and TRUNCATE by other roles too, and only Owner (or a superuser) can disable it: the
// database user the services share cannot, unless it is a superuser, a member of Owner, or
// has CREATEROLE (which lets it make itself one). What such a user can still do, the
// checkpoints make visible.
//
// The package never changes or removes an entry, and never writes to the event store.
package auditlog
