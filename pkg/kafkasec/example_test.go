package kafkasec_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

// A client of a SASL_SSL listener: check the settings and the brokers once at start, and
// stop with the reason when the brokers refuse them, then build the clients.
func ExampleProbe() {
	sec := kafkasec.Security{
		Protocol:  kafkasec.SASLSSL,
		Mechanism: kafkasec.ScramSHA512,
		Username:  "projector",
		Password:  "from a secret store",
		CAFile:    "/etc/kafka/ca.crt",
	}
	brokers := []string{"kafka-0.kafka:9093"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var refused *kafkasec.Error
	if err := kafkasec.Probe(ctx, brokers, sec); errors.As(err, &refused) {
		log.Fatal(refused) // a setting, a certificate or an ACL to fix: no retry cures it
	}
	transport, err := sec.Transport()
	if err != nil {
		log.Fatal(err)
	}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	_ = client
}

// Validate checks the settings without reading a file.
func ExampleSecurity_Validate() {
	err := kafkasec.Security{Protocol: kafkasec.SASLSSL, Username: "projector"}.Validate()
	fmt.Println(err)
	// Output:
	// kafka security: Mechanism: required with SASL_SSL (one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
	// kafka security: Password: required with SASL_SSL
}
