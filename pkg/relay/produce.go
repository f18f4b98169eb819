package relay

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"
)

// produce sends each partition's records as one produce request, all partitions at once, and
// returns why the request of each partition that failed did (their records may or may not have
// landed: the rows stay in the outbox and are published again, or held).
//
// kafka-go's Writer is not used: it waits out its BatchTimeout on every partition of every
// call, and may split one partition's share over several batches, the later of which can land
// after the earlier one failed. Here acks (all in-sync replicas) and the partitioner (murmur2,
// as the Java clients) are set explicitly, and there is no batch timer.
func (r *Relay) produce(ctx context.Context, msgs []kafka.Message, parts []partitionKey) map[partitionKey]error {
	byPart := map[partitionKey][]kafka.Record{}
	var order []partitionKey
	for j, m := range msgs {
		p := parts[j]
		if _, ok := byPart[p]; !ok {
			order = append(order, p)
		}
		byPart[p] = append(byPart[p], kafka.Record{
			Time: m.Time, Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers,
		})
	}
	var mu sync.Mutex
	failed := map[partitionKey]error{}
	var wg sync.WaitGroup
	for _, p := range order {
		wg.Go(func() {
			res, err := r.client.Produce(ctx, &kafka.ProduceRequest{
				Topic: p.topic, Partition: p.partition, RequiredAcks: kafka.RequireAll,
				Records: kafka.NewRecordReader(byPart[p]...),
			})
			if err == nil {
				err = produceError(res)
			}
			if err != nil {
				mu.Lock()
				failed[p] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// produceError is the error of a produce response, with the broker's reasons for the records
// it names, if any.
func produceError(res *kafka.ProduceResponse) error {
	if res.Error == nil && len(res.RecordErrors) == 0 {
		return nil
	}
	var why []string
	idx := make([]int, 0, len(res.RecordErrors))
	for i := range res.RecordErrors {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		why = append(why, fmt.Sprintf("record %d: %v", i, res.RecordErrors[i]))
	}
	if res.Error == nil {
		return fmt.Errorf("%d records refused (%s)", len(idx), strings.Join(why, "; "))
	}
	if len(why) > 0 {
		return fmt.Errorf("%w (%s)", res.Error, strings.Join(why, "; "))
	}
	return res.Error
}

// refusedForGood reports whether the broker refused a batch for a fault of its records that
// sending them again cannot cure: too large for the topic (MessageSizeTooLarge,
// RecordListTooLarge), malformed or corrupt (InvalidRecord, CorruptMessage, which kafka-go
// calls InvalidMessage, InvalidMessageSize),
// or with a timestamp the topic does not take (InvalidTimestamp). Every other failure (the
// broker unreachable, NotLeaderForPartition, RequestTimedOut, NotEnoughReplicas, a
// configuration error) is a dependency's: the relay pauses and retries it, and holds no
// stream for it. An authorization error holds no stream either, and stops the relay (Run).
func refusedForGood(err error) bool {
	var code kafka.Error
	if !errors.As(err, &code) {
		return false
	}
	switch code {
	case kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidRecord,
		kafka.InvalidMessage, kafka.InvalidMessageSize, kafka.InvalidTimestamp:
		return true
	}
	return false
}

// sizeRefusal reports whether the broker refused a batch as too large: the relay reads the
// topic's limit again at once.
func sizeRefusal(err error) bool {
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)
}
