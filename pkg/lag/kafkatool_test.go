package lag_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kafkaTools runs Kafka's own command-line tools (each a class under org.apache.kafka.tools
// and its arguments) from the stack's jars, all at once, and returns their standard outputs.
func kafkaTools(tb testing.TB, runs ...[]string) []string {
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
		cmds[i].Stdout, cmds[i].Stderr = &stdout[i], &stderr[i]
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

// deleteRecords deletes the records before offset from the partition, as retention does.
func deleteRecords(tb testing.TB, brokers []string, topic string, partition int, offset int64) {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "offsets.json")
	spec := fmt.Sprintf(`{"version":1,"partitions":[{"topic":%q,"partition":%d,"offset":%d}]}`, topic, partition, offset)
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		tb.Fatal(err)
	}
	kafkaTools(tb, []string{"DeleteRecordsCommand", "--bootstrap-server", strings.Join(brokers, ","), "--offset-json-file", file})
}

// toolTables reads the tables kafka-consumer-groups prints: each header line starts with
// GROUP, and a row's value of a column is the text from the column's start in the header
// to the next column's start (the tool pads every column to one width).
func toolTables(out string) []map[string]string {
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

func dash(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// The monitor's figures are those of Kafka's own kafka-consumer-groups --describe, taken at
// the same moment: nothing is produced or committed between the two.
func TestMonitor_ConsumerGroupCommand(t *testing.T) {
	f := newFixture(t, 3)
	f.produce(t, 0, 0, 1, 2, 3, 4)
	f.produce(t, 1, 0, 1, 2)
	f.produce(t, 2, 0, 1)
	empty, live := f.topic+".empty", f.topic+".live"
	f.commit(t, empty, map[int]int64{0: 2, 1: 3})
	f.commit(t, live, map[int]int64{0: 4})
	f.member(t, live) // assigned every partition; commits nothing

	m := f.monitor(t, 5, empty, live)
	s, err := m.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(f.brokers, ",")
	out := kafkaTools(t,
		[]string{"consumer.group.ConsumerGroupCommand", "--bootstrap-server", brokers, "--describe", "--group", empty, "--group", live},
		[]string{"consumer.group.ConsumerGroupCommand", "--bootstrap-server", brokers, "--describe", "--state", "--group", empty, "--group", live})
	t.Logf("kafka-consumer-groups --describe:\n%s\nkafka-consumer-groups --describe --state:\n%s", out[0], out[1])
	offsets, states := toolTables(out[0]), toolTables(out[1])

	for _, name := range []string{empty, live} {
		g, ok := s.Group(name)
		if !ok {
			t.Fatalf("group %s is not in the snapshot", name)
		}
		var want, got []string
		for _, row := range offsets {
			if row["GROUP"] == name {
				want = append(want, strings.Join([]string{row["TOPIC"], row["PARTITION"], row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"], row["CONSUMER-ID"], row["HOST"], row["CLIENT-ID"]}, " "))
			}
		}
		for _, p := range g.Partitions {
			got = append(got, strings.Join([]string{p.Topic, strconv.Itoa(p.Partition), dash(p.Committed), dash(p.End), dash(p.Lag), orDash(p.MemberID), orDash(p.Host), orDash(p.ClientID)}, " "))
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("group %s:\nmonitor                  %q\nkafka-consumer-groups    %q", name, got, want)
		}
		i := slices.IndexFunc(states, func(row map[string]string) bool { return row["GROUP"] == name })
		if i < 0 {
			t.Fatalf("kafka-consumer-groups --state did not describe %s: %v", name, states)
		}
		if st, n := states[i]["STATE"], states[i]["#MEMBERS"]; g.State != st || strconv.Itoa(g.Members) != n {
			t.Errorf("group %s: state %s with %d members, kafka-consumer-groups says %s with %s", name, g.State, g.Members, st, n)
		}
	}
	if g, _ := s.Group(live); g.State != "Stable" || g.Members != 1 {
		t.Errorf("group %s: %s with %d members, want Stable with 1", live, g.State, g.Members)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
