//go:build stack

package stack_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The projector's consumer group and its neighbours on the broker: each deployment's
// projector joins the group <prefix>-projector, so deployments that share a broker with
// prefixes of their own never share a group.

// TestProjector_ConsumesOnceItsTopicsExist: a projector that starts before its deployment's
// topics exist (the writer or `annals topics` creates them) consumes once they are there. (A
// member that joined while they were missing would own no partition; one that joined between
// the group leader's assignment and kafka-go's partition watcher's first look would keep none
// for good: the runtime waits for its topics before it joins.)
func TestProjector_ConsumesOnceItsTopicsExist(t *testing.T) {
	bins := buildBinaries(t)
	e := newFaultEnvWithoutTopics(t)
	proj := startService(t, bins.projector, e, "projector", freeAddr(t))
	t.Cleanup(func() {
		g := generations(t, proj.process)
		t.Logf("the projector went through %d group generations; partitions owned in the last ten: %v", len(g), g[max(0, len(g)-10):])
	})
	// The writer creates the topics when it starts; then the projector must consume.
	d := &deployment{env: e, bins: bins, writer: startService(t, bins.writer, e, "writer", freeAddr(t))}
	r := workload{users: 10, ordersPerUser: 2, events: 200, clients: 2}.start(t, d.writer.url)
	r.wait(t, time.Minute)
	checkReadModels(t, proj, r.m, time.Minute)
}

// TestProjector_DeploymentsAreIsolated: two deployments share the broker, with topic prefixes
// of their own. The second one's projector is killed (SIGKILL) and started again; the first
// deployment's projector should not notice: no rebalance, and its read models keep up with its
// commands. (Were both projectors members of one group, the restart would rebalance the first
// deployment's projector, and the rebalance would wait for the killed member's session to time
// out, 10 s during which the first deployment's read models stand still.)
func TestProjector_DeploymentsAreIsolated(t *testing.T) {
	d := newDeployment(t)
	p1 := d.startProjector(t, "projector-1", freeAddr(t))
	other := newFaultEnv(t)
	addr2 := freeAddr(t)
	p2 := startService(t, d.bins.projector, other, "other-projector", addr2)
	partitions := 2 * d.env.cfg.Kafka.TopicPartitions
	owns := func(p *service) bool {
		g := generations(t, p.process)
		return len(g) > 0 && g[len(g)-1] == partitions
	}
	waitEvery(t, time.Minute, 100*time.Millisecond, "both projectors to own their deployment's partitions", func() bool { return owns(p1) && owns(p2) })
	before := len(generations(t, p1.process))

	p2.kill()
	p2 = startService(t, d.bins.projector, other, "other-projector-2", addr2)

	// Meanwhile: commands to the first deployment, each read back through its projector with
	// read-your-writes, until the other deployment's new projector owns its partitions; the
	// longest wait is the first projector's stall.
	c := &writerClient{url: d.writer.url, rng: rand.New(rand.NewPCG(3, 4)), run: &run{}}
	var worst time.Duration
	deadline := time.Now().Add(time.Minute)
	for n := 0; n < 3 || !owns(p2); n++ {
		if time.Now().After(deadline) {
			t.Fatalf("the other deployment's new projector did not own its partitions within a minute")
		}
		u := &userModel{id: uuid.NewString(), version: -1}
		if err := c.userStep(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		status, body, err := get(context.Background(), fmt.Sprintf("%s/v1/users/%s?min_version=0&wait=20s", p1.url, u.id))
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET the new user from projector-1: %d %s %v", status, body, err)
		}
		worst = max(worst, time.Since(start))
	}
	after := generations(t, p1.process)
	if len(after) != before {
		t.Errorf("projector-1 went through %d rebalances (partitions owned per generation: %v) while the other deployment's projector restarted", len(after)-before, after)
	}
	if worst > 2*time.Second {
		t.Errorf("projector-1 took up to %v to apply a command of its own deployment while another deployment's projector restarted", worst.Round(time.Millisecond))
	}
}
