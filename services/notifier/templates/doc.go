// Package templates renders the notifier's emails: for each kind of email (welcome, order
// confirmed, order cancelled) a subject and a plain-text body (text/template) and an HTML body
// (html/template, which escapes what the data brings in).
//
// The templates are built in (the defaults folder, embedded). A folder given to Load replaces
// any of them by file name (welcome.subject.tmpl, welcome.text.tmpl, welcome.html.tmpl, and
// the same for order_confirmed and order_cancelled); a file there with another name is an
// error, so that a misspelt override does not silently leave the built-in template in place.
// Load parses every template and executes it once on sample data, so a template that refers
// to a field that does not exist stops start-up rather than an email later.
//
// A subject is one line: Render trims it and turns each run of white space, line breaks or
// other control characters (which the data may bring in: a user's name, say) into one space. The package
// never sends anything.
package templates
