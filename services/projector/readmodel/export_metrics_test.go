package readmodel

import "github.com/annals-dev/annals/pkg/consume"

// ConsumerUnit is the unit the projector's consumer runs each lane's share of a batch in.
func ConsumerUnit(p *Projection) consume.Unit { return p.unit(consume.PostgresUnit(p.pool)) }
