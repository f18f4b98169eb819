package relaytest

import "testing"

func testLateAppend(t *testing.T, e *env)          { t.Skip("not yet") }
func testOnePublisherAtATime(t *testing.T, e *env) { t.Skip("not yet") }
func testAbruptStop(t *testing.T, e *env)          { t.Skip("not yet") }
func testHeldStream(t *testing.T, e *env)          { t.Skip("not yet") }
func testHoldsWholeAppend(t *testing.T, e *env)    { t.Skip("not yet") }
func testReadByteBudget(t *testing.T, e *env)      { t.Skip("not yet") }
func testBacklog(t *testing.T, e *env)             { t.Skip("not yet") }
