package bench

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/annals-dev/annals/internal/load"
)

// CostRun is the pipeline's processor time per command: commands at a steady rate, then the
// wait until every consumer group has caught up, with the processor time of every program
// of the pipeline over both, from /proc.
type CostRun struct {
	Rate     float64     `json:"rate"`
	Commands load.Result `json:"commands"`
	// CPUSeconds is each program's processor time over the run: "postgres" (every server
	// process, and those it reaped meanwhile), "kafka" (the broker), "mailpit", and each
	// service by name. MsPerCommand is their sum per command.
	CPUSeconds   map[string]float64 `json:"cpu_seconds"`
	MsPerCommand float64            `json:"ms_per_command"`
	// Brokers is how many Kafka brokers ran on the machine; all are counted.
	Brokers int `json:"brokers"`
}

// clockTicks is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// procTimes is a process's processor time in seconds, its own and that of the children it
// has reaped, from /proc/<pid>/stat, and its name.
type procTimes struct {
	comm          string
	own, reaped   float64
	isKafkaBroker bool
}

func readProc(pid string) (procTimes, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procTimes{}, false
	}
	s := string(b)
	i, j := strings.Index(s, "("), strings.LastIndex(s, ")")
	if i < 0 || j < i || j+2 > len(s) {
		return procTimes{}, false
	}
	f := strings.Fields(s[j+2:]) // from the state, the third field
	if len(f) < 15 {
		return procTimes{}, false
	}
	tick := func(k int) float64 {
		v, _ := strconv.ParseFloat(f[k], 64)
		return v / clockTicks
	}
	p := procTimes{comm: s[i+1 : j], own: tick(11) + tick(12), reaped: tick(13) + tick(14)}
	if p.comm == "java" {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		p.isKafkaBroker = bytes.Contains(cmdline, []byte("kafka.Kafka"))
	}
	return p, true
}

// pipelineCPU reads the processor time of every program of the pipeline: the PostgreSQL
// server's processes (with what they reaped: the backends of connections closed meanwhile),
// the Kafka brokers, the mail server, and the services. It returns the times by program and
// the number of brokers.
func pipelineCPU(services []*Service) (map[string]float64, int) {
	byPID := map[int]string{}
	for _, s := range services {
		if s.cmd != nil && s.cmd.Process != nil {
			byPID[s.cmd.Process.Pid] = s.Name
		}
	}
	out := map[string]float64{}
	brokers := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(e.Name())
		if !ok {
			continue
		}
		switch {
		case byPID[pid] != "":
			out[byPID[pid]] += p.own
		case p.comm == "postgres":
			out["postgres"] += p.own + p.reaped
		case p.isKafkaBroker:
			out["kafka"] += p.own
			brokers++
		case strings.HasPrefix(p.comm, "mailpit"): // its program carries its version: mailpit-v1.33.1
			out["mailpit"] += p.own
		}
	}
	return out, brokers
}

// rusageCPU is the processor time, in seconds, of this process (syscall.RUSAGE_SELF) or of
// the children it has waited for (syscall.RUSAGE_CHILDREN); 0 when the kernel does not say.
func rusageCPU(who int) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// postgresCPU is the processor time of the PostgreSQL server's processes.
func postgresCPU() float64 {
	t, _ := pipelineCPU(nil)
	return t["postgres"]
}

// costOf is the run's figures from readings before and after.
func costOf(rate float64, res load.Result, before, after map[string]float64, brokers int) CostRun {
	c := CostRun{Rate: rate, Commands: res, CPUSeconds: map[string]float64{}, Brokers: brokers}
	total := 0.0
	for name, v := range after {
		d := max(v-before[name], 0)
		c.CPUSeconds[name] = d
		total += d
	}
	if res.Commands > 0 {
		c.MsPerCommand = 1000 * total / float64(res.Commands)
	}
	return c
}

// breakdown lists each program's milliseconds per command, the largest first.
func (c CostRun) breakdown() string {
	names := make([]string, 0, len(c.CPUSeconds))
	for name := range c.CPUSeconds {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case c.CPUSeconds[a] > c.CPUSeconds[b]:
			return -1
		case c.CPUSeconds[a] < c.CPUSeconds[b]:
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(names))
	for _, name := range names {
		ms := 0.0
		if c.Commands.Commands > 0 {
			ms = 1000 * c.CPUSeconds[name] / float64(c.Commands.Commands)
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", name, ms))
	}
	return strings.Join(parts, ", ") + " ms"
}
