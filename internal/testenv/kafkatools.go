package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// KafkaTools runs Kafka's own command-line tools from the stack's jars ($KAFKA_LIBS), all at
// once: each run is a class under org.apache.kafka.tools (such as
// "consumer.group.ConsumerGroupCommand") and its arguments. It returns their standard
// outputs, and fails the test when one fails. Under -short without the jars, it skips.
func KafkaTools(tb testing.TB, runs ...[]string) []string {
	tb.Helper()
	return kafkaTools(tb, nil, runs...)
}

// DeleteRecords deletes the records before offset from partition of topic, as the topic's
// retention does, with Kafka's own DeleteRecordsCommand.
func DeleteRecords(tb testing.TB, topic string, partition int, offset int64) {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "offsets.json")
	spec := fmt.Sprintf(`{"version":1,"partitions":[{"topic":%q,"partition":%d,"offset":%d}]}`, topic, partition, offset)
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		tb.Fatal(err)
	}
	KafkaTools(tb, []string{"DeleteRecordsCommand", "--bootstrap-server", strings.Join(KafkaBrokers(tb), ","), "--offset-json-file", file})
}

// ConsoleRecord is a record for ConsoleProduce: text only, as the console producer reads
// lines of UTF-8, with at least one header. No part may hold a tab or a line break, nor a
// header name a colon or a header value a comma.
type ConsoleRecord struct {
	Key, Value string
	Headers    [][2]string // name, value
}

// ConsoleProduce writes records to topic with Kafka's own console producer
// (org.apache.kafka.tools.ConsoleProducer, with parse.key and parse.headers): a producer
// that is not Annals, as anyone with access to the brokers could run. The records go to the
// partitions of their keys (murmur2, as the relay's), in order.
func ConsoleProduce(tb testing.TB, topic string, records ...ConsoleRecord) {
	tb.Helper()
	var in strings.Builder
	for _, r := range records {
		hs := make([]string, len(r.Headers))
		for i, h := range r.Headers {
			if strings.ContainsAny(h[0], ":,\t\n") || strings.ContainsAny(h[1], ",\t\n") {
				tb.Fatalf("header %q: the console producer cannot write it", h[0])
			}
			hs[i] = h[0] + ":" + h[1]
		}
		if strings.ContainsAny(r.Key, "\t\n") || strings.ContainsAny(r.Value, "\t\n") {
			tb.Fatalf("record %q: the console producer cannot write a tab or a line break", r.Key)
		}
		if len(hs) == 0 {
			tb.Fatalf("record %q: give it a header (parse.headers wants one)", r.Key)
		}
		in.WriteString(strings.Join(hs, ",") + "\t" + r.Key + "\t" + r.Value + "\n")
	}
	kafkaTools(tb, strings.NewReader(in.String()), []string{"ConsoleProducer",
		"--bootstrap-server", strings.Join(KafkaBrokers(tb), ","), "--topic", topic,
		"--property", "parse.key=true", "--property", "parse.headers=true",
		"--producer-property", "acks=all", "--producer-property", "linger.ms=0"})
}

// kafkaTools is KafkaTools with stdin, when not nil, as the standard input of every run.
func kafkaTools(tb testing.TB, stdin io.Reader, runs ...[]string) []string {
	tb.Helper()
	libs := os.Getenv("KAFKA_LIBS")
	java, err := exec.LookPath("java")
	if libs == "" || err != nil {
		msg := "KAFKA_LIBS is not set or java is not on PATH: this test needs Kafka's own tools (run `make up` and `eval \"$(scripts/stack.sh env)\"`)"
		if testing.Short() {
			tb.Skip(msg)
		}
		tb.Fatal(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmds := make([]*exec.Cmd, len(runs))
	stdout := make([]bytes.Buffer, len(runs))
	stderr := make([]bytes.Buffer, len(runs))
	for i, run := range runs {
		cmds[i] = exec.CommandContext(ctx, java, append([]string{"-Xms64m", "-Xmx256m", "-cp", libs + "/*", "org.apache.kafka.tools." + run[0]}, run[1:]...)...)
		cmds[i].Stdout, cmds[i].Stderr, cmds[i].Stdin = &stdout[i], &stderr[i], stdin
		if err := cmds[i].Start(); err != nil {
			tb.Fatalf("%s: %v", run[0], err)
		}
	}
	out := make([]string, len(runs))
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			tb.Errorf("%s: %v\n%s%s", strings.Join(runs[i], " "), err, stdout[i].String(), stderr[i].String())
		}
		out[i] = stdout[i].String()
	}
	if tb.Failed() {
		tb.FailNow()
	}
	return out
}

// ConsumerGroupTables reads the tables kafka-consumer-groups --describe prints: each header
// line starts with GROUP, and a row's value of a column is the text from the column's start
// in the header to the next column's start (the tool pads every column to one width).
func ConsumerGroupTables(out string) []map[string]string {
	var rows []map[string]string
	var names []string
	var starts []int
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, "GROUP ") {
			names, starts = nil, nil
			for i := 0; i < len(line); {
				if line[i] == ' ' {
					i++
					continue
				}
				j := i
				for j < len(line) && line[j] != ' ' {
					j++
				}
				names, starts = append(names, line[i:j]), append(starts, i)
				i = j
			}
			continue
		}
		if names == nil || strings.TrimSpace(line) == "" || strings.HasPrefix(line, "Consumer group ") {
			continue
		}
		row := map[string]string{}
		for k, name := range names {
			from, to := starts[k], len(line)
			if k+1 < len(starts) {
				to = min(starts[k+1], len(line))
			}
			if from < len(line) {
				row[name] = strings.TrimSpace(line[from:to])
			}
		}
		rows = append(rows, row)
	}
	return rows
}
