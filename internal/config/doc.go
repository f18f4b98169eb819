// Package config loads the configuration shared by the Annals services and
// the annals CLI.
//
// Configuration lives in one file in the TuskLang (.tsk) syntax of the
// original event-sourcing guide (config/event_sourcing.tsk by default):
//
//	[event_store]
//	host: @env("EVENT_STORE_HOST", "127.0.0.1") # a comment
//	password: @env.secure("EVENT_STORE_PASSWORD")
//
// Every key has a schema entry (see Keys) with its environment variable,
// kind, default and allowed values. For each key the environment variable
// wins, then the value written in the file (a literal or the default of an
// @env call), then the schema default. Unknown sections and keys, values
// that do not parse, values out of range and unsupported choices (such as
// EVENT_STORE_TYPE=cassandra), and settings a choice needs but lacks (such as
// EVENT_STORE_TYPE=redis without EVENT_STORE_REDIS_URL), are errors that
// name both the environment variable and the section.key; Load reports all
// of them at once.
//
// What this package must never do:
//
//   - log, print or echo a secret: secrets are held as Secret, whose every
//     string, JSON, text and slog form is "[redacted]", and error messages
//     never quote a secret's value;
//   - read anything but the file it is given and the environment lookup
//     function it is given (a nil lookup means an empty environment). The
//     only other filesystem access is ResolvePath checking whether
//     DefaultPath exists, and CheckFiles reading the TLS files the settings
//     name (KAFKA_TLS_*, EVENT_STORE_SSL*), which programs call after Load.
package config
