package ingest

// QueueLen is how many reports wait for a worker (for tests).
func QueueLen(b *Batcher) int { return len(b.queue) }
