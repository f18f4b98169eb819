package consume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

// Replay moves the committed offsets of a stopped consumer group back to the first record at
// or after since on every partition of topics, so that the group's next consumer receives
// those records again. It is the broker-side half of rebuilding a read model or re-running a
// handler: nothing is read or written but the group's committed offsets.
//
// The offset of a partition comes from the broker (ListOffsets by timestamp): the first offset
// whose record timestamp (the relay sets it to the event's recorded_at) is at or after since;
// a partition with no such record gets its end offset. Timestamps need not grow with offsets
// (transactions commit out of order), so a few older records may follow that offset and are
// delivered again too, but no record of since or later precedes it.
//
// Replay refuses, and changes nothing, when the group has live members (its state is neither
// Empty nor Dead): a running consumer would overwrite the offsets with its next commit. The
// error is a *ReplayActiveGroupError. It also refuses a group that has no committed offset on
// any of the topics (ErrReplayNoOffsets): that is almost always a misspelt group name, and
// committing would create a group nobody runs. The offsets are committed as an administrator
// does (generation -1, no member id), which the broker accepts only while the group has no
// members, so a consumer that joins while Replay runs makes the commit fail rather than race
// with it. The committed offsets are read back and compared before Replay returns.
//
// Replay never moves an offset forward, since that would skip records the group has not
// processed: a partition whose committed offset is already at or before the target keeps it,
// and a partition without a committed offset is left without one (the consumer's start
// offset applies to it; kafka-go's default, FirstOffset, includes every record from since on).
//
// until, when not zero, must be after since. It does not stop the replay: Kafka has no end
// offset for a group, so the records after until are delivered again as well. It makes the
// plan report, per partition, the offsets [Since, Until) of the records of [since, until),
// delivered again first. Consumers that record what they applied (Inbox) skip the events
// they have already applied, so a replay re-runs only what they have not; a consumer without
// such a record applies every replayed event again.
//
// Replay connects in plaintext; Replayer.Replay takes the brokers' security.
func Replay(ctx context.Context, brokers []string, group string, topics []string, since, until time.Time) (*ReplayPlan, error) {
	return Replayer{Brokers: brokers}.Replay(ctx, group, topics, since, until)
}

// PlanReplay computes what Replay would do and commits nothing (a dry run). Unlike Replay it
// does not fail on a group with live members; the plan's State and Members tell.
func PlanReplay(ctx context.Context, brokers []string, group string, topics []string, since, until time.Time) (*ReplayPlan, error) {
	return Replayer{Brokers: brokers}.Plan(ctx, group, topics, since, until)
}

// Replayer replays consumer groups on brokers reached with Security (TLS, SASL); the zero
// Security is plaintext. A broker that refuses it, or whose ACLs lack what a replay needs
// (Describe on the group and the topics, Read on the group to commit), is a *kafkasec.Error.
type Replayer struct {
	Brokers  []string
	Security kafkasec.Security
}

// Replay is the package's Replay, on r's brokers.
func (r Replayer) Replay(ctx context.Context, group string, topics []string, since, until time.Time) (*ReplayPlan, error) {
	return replayRun(ctx, r, group, topics, since, until, true)
}

// Plan is the package's PlanReplay, on r's brokers.
func (r Replayer) Plan(ctx context.Context, group string, topics []string, since, until time.Time) (*ReplayPlan, error) {
	return replayRun(ctx, r, group, topics, since, until, false)
}

// ReplayPlan is what a replay does, or would do, to a group's committed offsets.
type ReplayPlan struct {
	Group   string
	Since   time.Time
	Until   time.Time // zero when none was given
	State   string    // the group's state when the plan was made (Empty, Dead, Stable, ...)
	Members int       // the group's live members when the plan was made
	// Partitions are every partition of the topics, in the order of the topics given and
	// then by partition.
	Partitions []ReplayPartition
	// Committed is true when Replay has finished: the moved offsets committed and read back.
	Committed bool
}

// Active tells whether the group had live members when the plan was made (a state other
// than Empty and Dead, or members), which makes Replay refuse it.
func (p *ReplayPlan) Active() bool {
	return p.Members > 0 || !(strings.EqualFold(p.State, "Empty") || strings.EqualFold(p.State, "Dead"))
}

// Moved counts the partitions whose committed offset the replay moves back.
func (p *ReplayPlan) Moved() int {
	n := 0
	for _, pp := range p.Partitions {
		if pp.Moved() {
			n++
		}
	}
	return n
}

// ReplayPartition is the replay of one partition. Offsets of -1 mean "none".
type ReplayPartition struct {
	Topic     string
	Partition int
	// Old is the group's committed offset before the replay, -1 when it had none.
	Old int64
	// New is the group's committed offset after the replay: Since, or Old when moving to
	// Since would move the offset forward or the partition has no committed offset.
	New int64
	// Since is the first offset whose record timestamp is at or after since, or End when
	// no record is.
	Since int64
	// Until is the first offset whose record timestamp is at or after until, or End when no
	// record is; -1 when no until was given. The records [Since, Until) are those of
	// [since, until).
	Until int64
	// End is the partition's end offset (the offset of its next record) when planned.
	End int64
}

// Moved tells whether the replay moves this partition's committed offset.
func (p ReplayPartition) Moved() bool { return p.Old >= 0 && p.New != p.Old }

// ErrReplayNoOffsets is the error of a replay of a group that has no committed offset on
// any of the topics.
var ErrReplayNoOffsets = errors.New("no committed offsets")

// ReplayActiveGroupError is the error of a replay of a group that has live members.
type ReplayActiveGroupError struct {
	Group   string
	State   string
	Members int
}

func (e *ReplayActiveGroupError) Error() string {
	return fmt.Sprintf("group %q is %s with %d live member(s): stop its consumers before replaying; nothing was changed",
		e.Group, e.State, e.Members)
}

func replayRun(ctx context.Context, r Replayer, group string, topics []string, since, until time.Time, commit bool) (*ReplayPlan, error) {
	plan, err := replayOn(ctx, r, group, topics, since, until, commit)
	return plan, kafkasec.Classify(err, r.Security)
}

func replayOn(ctx context.Context, r Replayer, group string, topics []string, since, until time.Time, commit bool) (*ReplayPlan, error) {
	topics = replayTopics(topics)
	switch {
	case group == "":
		return nil, errors.New("replay: no group given")
	case len(topics) == 0:
		return nil, errors.New("replay: no topics given")
	case since.IsZero():
		return nil, errors.New("replay: no since time given")
	case since.After(time.Now()):
		return nil, fmt.Errorf("replay: since %s is in the future", since.UTC().Format(time.RFC3339Nano))
	case !until.IsZero() && !until.After(since):
		return nil, fmt.Errorf("replay: until %s must be after since %s",
			until.UTC().Format(time.RFC3339Nano), since.UTC().Format(time.RFC3339Nano))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	transport, release, err := r.Security.RoundTripper()
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer release()
	client := &kafka.Client{Addr: kafka.TCP(r.Brokers...), Timeout: 30 * time.Second, Transport: transport}

	plan := &ReplayPlan{Group: group, Since: since, Until: until}
	if err := replayDescribe(ctx, client, plan); err != nil {
		return nil, err
	}
	if commit && plan.Active() {
		return nil, &ReplayActiveGroupError{Group: group, State: plan.State, Members: plan.Members}
	}
	partitions, err := replayPartitions(ctx, client, topics)
	if err != nil {
		return nil, err
	}
	old, err := replayCommitted(ctx, client, group, partitions)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(old, func(o int64) bool { return o >= 0 }) {
		return nil, fmt.Errorf("replay: group %q has %w on %s (is the name right? a replay moves offsets a group has committed)",
			group, ErrReplayNoOffsets, strings.Join(topics, ", "))
	}
	end, err := replayListOffsets(ctx, client, partitions, kafka.LastOffset, nil)
	if err != nil {
		return nil, fmt.Errorf("replay: end offsets: %w", err)
	}
	sinceOffsets, err := replayListOffsets(ctx, client, partitions, replayMillis(since), end)
	if err != nil {
		return nil, fmt.Errorf("replay: offsets at %s: %w", since.UTC().Format(time.RFC3339Nano), err)
	}
	var untilOffsets []int64
	if !until.IsZero() {
		if untilOffsets, err = replayListOffsets(ctx, client, partitions, replayMillis(until), end); err != nil {
			return nil, fmt.Errorf("replay: offsets at %s: %w", until.UTC().Format(time.RFC3339Nano), err)
		}
	}
	for i, tp := range partitions {
		p := ReplayPartition{Topic: tp.topic, Partition: tp.partition, Old: old[i], New: old[i], Since: sinceOffsets[i], Until: -1, End: end[i]}
		if p.Old > p.Since {
			p.New = p.Since
		}
		if untilOffsets != nil {
			p.Until = untilOffsets[i]
		}
		plan.Partitions = append(plan.Partitions, p)
	}
	if !commit {
		return plan, nil
	}
	if err := replayCommit(ctx, client, plan); err != nil {
		return nil, err
	}
	plan.Committed = true
	return plan, nil
}

// replayTopics drops empty and repeated names, keeping the order.
func replayTopics(topics []string) []string {
	var out []string
	for _, t := range topics {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// replayMillis is t in Unix milliseconds rounded up, so that "at or after t" holds for
// records' millisecond timestamps too. Times before 1970 become 0: negative timestamps are
// ListOffsets' special values.
func replayMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return max(ms, 0)
}

func replayDescribe(ctx context.Context, client *kafka.Client, plan *ReplayPlan) error {
	resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{plan.Group}})
	if err != nil {
		return fmt.Errorf("replay: describe group %q: %w", plan.Group, err)
	}
	for _, g := range resp.Groups {
		if g.GroupID != plan.Group {
			continue
		}
		if g.Error != nil {
			return fmt.Errorf("replay: describe group %q: %w", plan.Group, g.Error)
		}
		plan.State, plan.Members = g.GroupState, len(g.Members)
		return nil
	}
	return fmt.Errorf("replay: describe group %q: the broker did not describe it", plan.Group)
}

type replayTopicPartition struct {
	topic     string
	partition int
}

// replayPartitions lists every partition of the topics, in the order of the topics and then
// by partition.
func replayPartitions(ctx context.Context, client *kafka.Client, topics []string) ([]replayTopicPartition, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("replay: metadata of %s: %w", strings.Join(topics, ", "), err)
	}
	var out []replayTopicPartition
	for _, name := range topics {
		i := slices.IndexFunc(meta.Topics, func(t kafka.Topic) bool { return t.Name == name })
		switch {
		case i < 0:
			return nil, fmt.Errorf("replay: topic %s: not in the broker's metadata", name)
		case meta.Topics[i].Error != nil:
			return nil, fmt.Errorf("replay: topic %s: %w", name, meta.Topics[i].Error)
		case len(meta.Topics[i].Partitions) == 0:
			return nil, fmt.Errorf("replay: topic %s has no partitions", name)
		}
		var ids []int
		for _, p := range meta.Topics[i].Partitions {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		for _, id := range ids {
			out = append(out, replayTopicPartition{name, id})
		}
	}
	return out, nil
}

// replayCommitted returns the group's committed offset of each partition, -1 where it has none.
func replayCommitted(ctx context.Context, client *kafka.Client, group string, partitions []replayTopicPartition) ([]int64, error) {
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for _, tp := range partitions {
		req.Topics[tp.topic] = append(req.Topics[tp.topic], tp.partition)
	}
	resp, err := client.OffsetFetch(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("replay: committed offsets of group %q: %w", group, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("replay: committed offsets of group %q: %w", group, resp.Error)
	}
	out := make([]int64, len(partitions))
	for i, tp := range partitions {
		j := slices.IndexFunc(resp.Topics[tp.topic], func(p kafka.OffsetFetchPartition) bool { return p.Partition == tp.partition })
		if j < 0 {
			return nil, fmt.Errorf("replay: committed offsets of group %q: no answer for %s/%d", group, tp.topic, tp.partition)
		}
		p := resp.Topics[tp.topic][j]
		if p.Error != nil {
			return nil, fmt.Errorf("replay: committed offset of group %q on %s/%d: %w", group, tp.topic, tp.partition, p.Error)
		}
		out[i] = max(p.CommittedOffset, -1)
	}
	return out, nil
}

// replayListOffsets asks the partitions' leaders for an offset: the end offset when at is
// kafka.LastOffset, else the first offset whose record timestamp is at or after at (in Unix
// milliseconds), or the partition's end offset from end when no record is.
func replayListOffsets(ctx context.Context, client *kafka.Client, partitions []replayTopicPartition, at int64, end []int64) ([]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, tp := range partitions {
		req.Topics[tp.topic] = append(req.Topics[tp.topic], kafka.OffsetRequest{Partition: tp.partition, Timestamp: at})
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(partitions))
	for i, tp := range partitions {
		j := slices.IndexFunc(resp.Topics[tp.topic], func(p kafka.PartitionOffsets) bool { return p.Partition == tp.partition })
		if j < 0 {
			return nil, fmt.Errorf("no answer for %s/%d", tp.topic, tp.partition)
		}
		p := resp.Topics[tp.topic][j]
		if p.Error != nil {
			return nil, fmt.Errorf("%s/%d: %w", tp.topic, tp.partition, p.Error)
		}
		if at == kafka.LastOffset {
			if out[i] = p.LastOffset; out[i] < 0 {
				return nil, fmt.Errorf("%s/%d: the broker answered end offset %d", tp.topic, tp.partition, out[i])
			}
			continue
		}
		// The answer is keyed by the offset found. No record at or after the time is offset
		// -1, with the timestamp -1 (kafka-go files that as LastOffset) or, as Kafka 4.1
		// answers, with the timestamp asked for (filed under Offsets[-1]).
		out[i] = -1
		switch len(p.Offsets) {
		case 0:
		case 1:
			for offset := range p.Offsets {
				out[i] = offset
			}
		default:
			return nil, fmt.Errorf("%s/%d: %d offsets in the answer, want 1", tp.topic, tp.partition, len(p.Offsets))
		}
		if out[i] < 0 {
			out[i] = end[i]
		}
		out[i] = min(out[i], end[i]) // a record appended since the end offsets were read
	}
	return out, nil
}

// replayCommit commits the moved partitions' offsets as an administrator (generation -1, no
// member) and reads them back.
func replayCommit(ctx context.Context, client *kafka.Client, plan *ReplayPlan) error {
	req := &kafka.OffsetCommitRequest{GroupID: plan.Group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for _, p := range plan.Partitions {
		if p.Moved() {
			req.Topics[p.Topic] = append(req.Topics[p.Topic], kafka.OffsetCommit{Partition: p.Partition, Offset: p.New})
		}
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := client.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("replay: commit the offsets of group %q: %w", plan.Group, err)
	}
	var errs []error
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p.Partition, p.Error))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.RebalanceInProgress) {
			return fmt.Errorf("replay: group %q gained a member while replaying; the broker refused the commit: %w", plan.Group, err)
		}
		return fmt.Errorf("replay: commit the offsets of group %q: %w", plan.Group, err)
	}
	var partitions []replayTopicPartition
	for _, p := range plan.Partitions {
		partitions = append(partitions, replayTopicPartition{p.Topic, p.Partition})
	}
	got, err := replayCommitted(ctx, client, plan.Group, partitions)
	if err != nil {
		return fmt.Errorf("replay: read back: %w", err)
	}
	for i, p := range plan.Partitions {
		if p.Moved() && got[i] != p.New {
			return fmt.Errorf("replay: group %q's committed offset on %s/%d is %d after committing %d", plan.Group, p.Topic, p.Partition, got[i], p.New)
		}
	}
	return nil
}
