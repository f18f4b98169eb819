package lag

import "time"

// Status is a group's health judged over the window of polls (see the package doc).
type Status string

// The statuses, from the best to the worst.
const (
	StatusOK      Status = "ok"
	StatusUnknown Status = "unknown"
	StatusWarn    Status = "warn"
	StatusStall   Status = "stall"
	StatusStop    Status = "stop"
)

// Statuses lists every status, from the best to the worst.
func Statuses() []Status {
	return []Status{StatusOK, StatusUnknown, StatusWarn, StatusStall, StatusStop}
}

func (s Status) severity() int {
	switch s {
	case StatusOK:
		return 0
	case StatusWarn:
		return 2
	case StatusStall:
		return 3
	case StatusStop:
		return 4
	}
	return 1
}

// Snapshot is what one poll read.
type Snapshot struct {
	// Time is when the poll began; lag in seconds is measured from it.
	Time time.Time
	// Topics holds the partitions of the topics that exist, in the order of Config.Topics
	// and then by partition.
	Topics []TopicPartition
	// Groups are the groups reported, by name.
	Groups []Group
	// Errors are the failures that left a part out: a missing topic; a group that could not
	// be described (it is reported with state Unknown and no members) or whose committed
	// offsets could not be read (it is left out); a record whose timestamp could not be
	// read (its lag in seconds is unknown).
	Errors []error
}

// Group returns the group named name, or false.
func (s *Snapshot) Group(name string) (Group, bool) {
	for _, g := range s.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

// TopicPartition is one partition of a watched topic.
type TopicPartition struct {
	Topic     string
	Partition int
	// End is the log-end offset: the offset the next record appended will get.
	End int64
}

// Group is one consumer group as a poll saw it.
type Group struct {
	Name string
	// State is the broker's word for the group: Stable, Empty, Dead, PreparingRebalance,
	// CompletingRebalance, ...; Unknown when the broker could not describe it.
	State string
	// Members counts the group's live members.
	Members int
	// Status is the group's health over the window; Reason says why, in words.
	Status Status
	Reason string
	// Samples counts the polls in the group's window so far (at most Config.Window).
	Samples int
	// Partitions are the partitions on which the group has a committed offset or an
	// assigned member, in the order of Config.Topics and then by partition.
	Partitions []Partition
}

// Partition is one partition of a group.
type Partition struct {
	Topic     string
	Partition int
	// Committed is the group's committed offset, -1 when it has none.
	Committed int64
	// End is the partition's log-end offset.
	End int64
	// Lag is End minus Committed (0 when the committed offset is past the end), -1 when
	// there is no committed offset.
	Lag int64
	// LagSeconds is the age of the oldest unconsumed record at the poll's time; 0 when Lag
	// is 0; -1 when unknown (no committed offset, or the record could not be read).
	LagSeconds float64
	// Oldest is the timestamp of the oldest unconsumed record; zero when LagSeconds is
	// not above 0.
	Oldest time.Time
	// MemberID, ClientID and Host name the member the partition is assigned to; empty when
	// none is.
	MemberID, ClientID, Host string
}

// Lag is the sum of the known lags of the group's partitions.
func (g Group) Lag() int64 {
	var n int64
	for _, p := range g.Partitions {
		n += max(p.Lag, 0)
	}
	return n
}

// TopicLag is the sum of the known lags of the group's partitions of topic.
func (g Group) TopicLag(topic string) int64 {
	var n int64
	for _, p := range g.Partitions {
		if p.Topic == topic {
			n += max(p.Lag, 0)
		}
	}
	return n
}

// MaxLagSeconds is the largest known lag in seconds of the group's partitions, -1 when none
// is known.
func (g Group) MaxLagSeconds() float64 {
	m := -1.0
	for _, p := range g.Partitions {
		m = max(m, p.LagSeconds)
	}
	return m
}
