package lag

// TimestampFetches counts the records the monitor has fetched for their timestamps.
func (m *Monitor) TimestampFetches() int64 { return m.fetches.Load() }
