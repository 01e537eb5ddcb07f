namespace Realtime.Fanout.Ingress;

/// <summary>
/// Tracks, per ingress partition, which consumed records still wait for node-topic
/// acknowledgements, and yields the offset that is safe to store: the first one whose
/// record, or any record before it, is not fully delivered yet.
/// </summary>
/// <remarks>
/// Records are added in offset order by the consume loop; acknowledgements arrive in any
/// order from the producer's delivery-report thread. Storing only the contiguous prefix is
/// what makes the hand-off at-least-once: a crash re-reads everything not fully delivered.
/// A generation number lets a rewind discard acknowledgements of records it will re-read.
/// </remarks>
internal sealed class IngressProgress
{
    private readonly Lock _gate = new();
    private readonly Dictionary<int, PartitionProgress> _partitions = [];
    private int _inFlight;

    public int Generation { get; private set; }

    /// <summary>Records added and not yet fully acknowledged, across partitions.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Registers a consumed record that needs <paramref name="acks"/> acknowledgements (0 = nothing to deliver).</summary>
    /// <returns>The offset to store now, or -1 when the safe offset did not move.</returns>
    public long Add(int partition, long offset, int acks)
    {
        lock (_gate)
        {
            var progress = Get(partition);
            progress.Pending.Enqueue(new Entry(offset, acks));
            if (acks > 0)
            {
                progress.Remaining[offset] = acks;
                _inFlight++;
            }

            return progress.Advance();
        }
    }

    /// <summary>Records one acknowledgement of a record added in <paramref name="generation"/>.</summary>
    /// <returns>The offset to store now, or -1 when the safe offset did not move.</returns>
    public long Acknowledge(int generation, int partition, long offset) => AcknowledgeAll(generation, partition, [offset]);

    /// <summary>Records one acknowledgement of each record in <paramref name="offsets"/> (one batch record's worth), under one lock.</summary>
    /// <returns>The offset to store now, or -1 when the safe offset did not move.</returns>
    public long AcknowledgeAll(int generation, int partition, IReadOnlyList<long> offsets)
    {
        lock (_gate)
        {
            if (generation != Generation || !_partitions.TryGetValue(partition, out var progress))
            {
                return -1;
            }

            var safe = -1L;
            for (var i = 0; i < offsets.Count; i++)
            {
                var offset = offsets[i];
                if (!progress.Remaining.TryGetValue(offset, out var remaining))
                {
                    continue;
                }

                if (remaining > 1)
                {
                    progress.Remaining[offset] = remaining - 1;
                    continue;
                }

                progress.Remaining.Remove(offset);
                _inFlight--;
                var advanced = progress.Advance();
                if (advanced >= 0)
                {
                    safe = advanced;
                }
            }

            return safe;
        }
    }

    /// <summary>Forgets partitions this worker no longer owns.</summary>
    public void Remove(IEnumerable<int> partitions)
    {
        lock (_gate)
        {
            foreach (var partition in partitions)
            {
                if (_partitions.Remove(partition, out var progress))
                {
                    _inFlight -= progress.Remaining.Count;
                }
            }
        }
    }

    /// <summary>
    /// Starts a new generation after a failed delivery: returns, per partition, the first
    /// offset not known to be delivered, where the consumer must seek to re-read.
    /// </summary>
    public Dictionary<int, long> Rewind()
    {
        lock (_gate)
        {
            Generation++;
            var seekTo = new Dictionary<int, long>();
            foreach (var (partition, progress) in _partitions)
            {
                if (progress.Pending.TryPeek(out var first))
                {
                    seekTo[partition] = first.Offset;
                }
            }

            _partitions.Clear();
            _inFlight = 0;
            return seekTo;
        }
    }

    private PartitionProgress Get(int partition)
    {
        if (!_partitions.TryGetValue(partition, out var progress))
        {
            progress = new PartitionProgress();
            _partitions[partition] = progress;
        }

        return progress;
    }

    private readonly record struct Entry(long Offset, int Acks);

    private sealed class PartitionProgress
    {
        public Queue<Entry> Pending { get; } = new();

        public Dictionary<long, int> Remaining { get; } = [];

        public long Advance()
        {
            long safe = -1;
            while (Pending.TryPeek(out var head) && (head.Acks == 0 || !Remaining.ContainsKey(head.Offset)))
            {
                Pending.Dequeue();
                safe = head.Offset + 1;
            }

            return safe;
        }
    }
}
