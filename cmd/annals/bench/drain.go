package bench

import (
	"cmp"
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/notifier/notify"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// DrainProjector drains the topics with the projector's consumer into fresh read models on
// pool (a schema with the event store's tables, whose inbox and blocked streams it uses).
// The drain ends once the inbox holds every event.
func DrainProjector(ctx context.Context, pool *pgxpool.Pool, cfg benchkit.DrainConfig) (benchkit.Drain, error) {
	if _, err := readmodel.Migrate(ctx, pool, nil); err != nil {
		return benchkit.Drain{}, err
	}
	p := readmodel.New(pool, readmodel.Options{Metrics: readmodel.NewMetrics(prometheus.NewRegistry())})
	return benchkit.DrainWith(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := p.Consumer(cc)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}, func(ctx context.Context) (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `select count(*) from annals_inbox where group_name = $1`, cmp.Or(cfg.Consumer.Group, readmodel.Group)).Scan(&n)
		return n >= cfg.Events, err
	})
}

// DrainNotifier drains the topics with the notifier as its service wires it from app (sender,
// built-in templates, user directory on the user topic userTopic), into a fresh sent log on
// pool (a schema with the event store's tables). The drain ends once the mail server has
// accepted emails emails.
func DrainNotifier(ctx context.Context, pool *pgxpool.Pool, app *config.Config, userTopic string, emails int, cfg benchkit.DrainConfig) (benchkit.Drain, error) {
	if _, err := notify.Migrate(ctx, pool, nil); err != nil {
		return benchkit.Drain{}, err
	}
	tpl, err := templates.Load(app.Notifier.TemplatesDir)
	if err != nil {
		return benchkit.Drain{}, err
	}
	snd, err := sender.New(sender.Config{
		Addr: app.SMTP.Addr, From: app.SMTP.From, Username: app.SMTP.Username, Password: app.SMTP.Password.Reveal(),
		TLS: sender.TLSMode(app.SMTP.StartTLS), Timeout: app.SMTP.Timeout, Rate: float64(app.Notifier.RateLimit),
		UserAgent: "annals-notifier",
	})
	if err != nil {
		return benchkit.Drain{}, err
	}
	defer snd.Close()
	n := notify.New(pool, snd, tpl, notify.Options{MessageIDDomain: snd.Domain(), UserWait: app.Notifier.UserWait,
		Registerer: prometheus.NewRegistry()})
	d, err := benchkit.DrainWith(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := n.Consumer(cc)
		if err != nil {
			return nil, err
		}
		dir, err := n.Directory(notify.DirectoryConfig{Brokers: cc.Brokers, Security: cc.Security, Topic: userTopic, Decode: cfg.Consumer.Decode})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			var wg sync.WaitGroup
			wg.Go(func() { _ = dir.Run(ctx) })
			defer wg.Wait()
			return c.Run(ctx)
		}, nil
	}, func(ctx context.Context) (bool, error) {
		var sent int
		err := pool.QueryRow(ctx, `select count(*) from annals_notifier_sent`).Scan(&sent)
		return sent >= emails, err
	})
	d.Emails = emails
	if d.Fetching > 0 {
		d.EmailsPerSec = float64(emails) / d.Fetching.Seconds()
	}
	return d, err
}
