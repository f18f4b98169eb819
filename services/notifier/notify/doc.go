// Package notify is the notifier's logic: the guide's EmailNotificationHandler (a welcome
// email on UserCreated, an order confirmation on OrderConfirmed, a cancellation with its
// reason on OrderCancelled) as a handler of the annals-notifier consumer group, the sent log
// that makes it send each email once, and the user directory that tells it where order
// emails go.
//
// # One email per event
//
// The handler looks the event up in the sent log (annals_notifier_sent, keyed by event id)
// before it sends, and writes the row once the SMTP server has accepted the email. A
// redelivered event (after a restart, a rebalance, a stall) therefore sends nothing. Every
// email's Message-ID is derived from its event, <event-id@domain of SMTP_FROM>, so that every
// attempt at one email carries the same Message-ID.
//
// Sending is no transaction, so one window remains: a crash (or a lost connection) after the
// server received the final "." of the message and before the sent log's row commits. The
// event is then delivered again and the email sent again: at most one duplicate per crash,
// with the same Message-ID, by which mail systems and clients can recognise it. The package
// narrows the window: the row is written right after the server's reply, retried for
// Options.RecordTimeout while the database fails for reasons of its own (postgres.Transient).
//
// # Failures
//
// A failure of a dependency is never the event's fault: it pauses the group (the handler
// returns consume.Unavailable), which starts again from its committed offsets, as often and
// as long as it takes. Nothing goes to the dead-letter topic for it and nothing is lost;
// emails sent in the meantime are in the sent log and not sent again. The dependencies are:
//
//   - the mail server: unreachable, refusing connections, timing out, answering 4xx at any
//     stage, or refusing our sender or credentials (sender.IsPermanent is false);
//   - the database: any failure that is the server's or the moment's and not the statement's
//     (postgres.Transient: unreachable, a deadlock, a serialization failure, a cancelled
//     statement, a read-only server during a failover, a full disk), in the group's handler
//     (consume.PostgresError) and in the directory, which retries it rather than skip an
//     event. The sent log's row, written after the server accepted an email, is retried in
//     place for Options.RecordTimeout, so that such a failure does not send the email again;
//   - the user directory, when it has not caught up with an order's user (see below).
//
// Only a fault of the event itself is poison, consume.Permanent with the reason, which sends
// the event to the dead-letter topic and parks its stream: the server refusing the email for
// good (a 5xx reply to RCPT TO or to the message), an invalid recipient address, malformed
// event data or data the database refuses (SQLSTATE class 22), an order never created, an
// order of a user who does not exist.
//
// Header injection cannot happen: the recipient's address must be a bare address without
// control characters; the display name is encoded by the mail library (RFC 2047) whatever it
// holds; the subject is one line (package templates).
//
// # The user directory
//
// Order events do not carry the user's address, and they are on another topic than the user
// events, so an order's email may be due before its user's events have been read. The
// directory (annals_notifier_users) is the notifier's own copy of what it needs of each user
// (address, name, deactivation), built from UserCreated, UserProfileUpdated and
// UserDeactivated: state carried by events, no call to another service. Each row is guarded
// by its stream's version, so an event applied twice changes nothing.
//
// The Directory reads the user topic on its own, outside the consumer group, like a global
// table: every notifier process reads every partition of the user topic, from the positions
// stored in annals_notifier_directory_offsets, which commit in the same transaction as the
// rows they cover; after a failed read it reads on with a new reader, so that it reads again
// within seconds of the broker's return, however long the broker was away. It cannot live
// inside the group: an order email that waits for its user
// holds its whole batch (the runtime commits a batch when all of its lanes are done), and the
// user event it waits for may be in the next batch; nor may the directory ever wait for the
// mail server. So an order email polls the directory, with backoff, for up to
// Options.UserWait (NOTIFIER_USER_WAIT). When the user topic is read normally that lasts
// milliseconds; the wait holds the group's batch in flight, which is the price of never
// mailing the wrong address.
//
// When the directory still has no address after UserWait, the notifier must tell a user who
// does not exist (the order event is wrong, and waiting cannot help) from a user the
// directory has not caught up with (after a broker restart the directory may be seconds
// behind the order topic; the relay may not have published the user's stream yet). The directory alone
// cannot tell: having read to the end of the user topic proves nothing about events still in
// the outbox. The event store can: the writer records a user before any order of theirs, and
// the notifier keeps its tables in the event store's database. So the rule is:
//
//   - the event store has no stream of the user: the user does not exist, and the order
//     event is poison (consume.Permanent, "the directory has no address for user ...: the
//     event store has no such user");
//   - the directory has a row of the user at the store's version of the user's stream, or
//     later, and that row has no address: every event of the user has been applied and none
//     carries one, so none will come; poison as well;
//   - otherwise the directory is behind: a dependency that is not ready. The handler returns
//     consume.Unavailable (ErrDirectoryBehind), logs a warning and counts it in
//     annals_notifier_directory_behind_total; the group pauses, and the email waits again
//     when it is delivered again. A pause that never ends (a user event the directory
//     cannot apply, a stream the relay holds) shows as the group's stalled offsets
//     (AnnalsConsumerGroupStalled) with the reason in the log; it never loses the email.
//
// What the notifier knows of orders (owner, lines, total: annals_notifier_orders) comes from
// the order events in the group itself, which sees an order's events in order.
//
// An order email whose event was recorded after its user's deactivation is not sent; the sent
// log records it as skipped, with the reason.
//
// # The limit per principal
//
// Options.EmailsPerPrincipalHour (NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR) bounds the emails the
// commands of one principal cause: the actor in the event's metadata (actor_kind,
// actor_issuer, actor), counted per hour of the events' recording, so that a redelivery, a
// backlog or a restart counts an event in the hour it belongs to. Events whose metadata names
// no actor (recorded before the writer stored one) share one principal, UnknownActorKind:
// nothing escapes the limit by carrying no actor. The count lives in the notifier's tables
// (annals_notifier_principal_hours), so it holds across the notifier's processes and restarts.
//
// An email is decided once it is rendered and just before it is sent, in one transaction: the
// count of its principal's hour goes up when it has room (the row lock of that statement
// makes concurrent lanes and processes take turns, so the limit is exact), or the email is
// recorded in the sent log as suppressed, with the reason, and counted in
// annals_notifier_emails_suppressed_total. The decision is kept by event id
// (annals_notifier_principal_emails), so an event delivered again, after a failed send or a
// crash, is neither counted again nor decided otherwise. A suppressed email is no failure: the
// consumer moves on, nothing is dead-lettered or blocked. An admitted email that then fails for
// good (a 5xx) keeps its place in the count.
//
// # Personal data
//
// Users' emails and names arrive encrypted when the writer records them so (pkg/shred):
// Options.Keys decrypts them for the directory and the welcome email. A user whose data key is
// destroyed, or whose UserPersonalDataErased the directory reads, becomes a tombstone in the
// directory (no email, no name, erased_at), every sent log row of the user's emails loses its
// recipient and subject (Erased), and each of the user's emails still due is recorded as
// suppressed with ReasonErased instead of being sent. An erasure and the recording of one of
// the user's emails take turns on an advisory lock of the user, so that no row written at the
// same moment keeps the address. Emails sent before stay in the mail server and mailboxes.
//
// The package never writes to the event store or to Kafka (the consumer runtime writes the
// dead letters); it reads the event store only to learn whether an order's user exists.
package notify
