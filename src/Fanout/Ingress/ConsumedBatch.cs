using System.Text;
using Confluent.Kafka;
using Realtime.Fanout.Routing;

namespace Realtime.Fanout.Ingress;

/// <summary>
/// One batch of ingress records on its way through the consume loop: read, grouped by channel,
/// sequenced, then dispatched. Three of them take turns, so that while Redis sequences one, the
/// one sequenced before is dispatched and the next one is read; all are reused, batch after batch.
/// </summary>
internal sealed class ConsumedBatch(int capacity)
{
    private readonly Dictionary<(string Channel, int Partition), ChannelWork> _byChannel = [];
    private readonly HashSet<int> _dropped = [];

    /// <summary>The records as consumed, in ingress order.</summary>
    public List<ConsumeResult<byte[], byte[]>> Records { get; } = new(capacity);

    /// <summary>What the sequencer reads of each record, by batch index.</summary>
    public List<(long Offset, byte[] Envelope, bool Transient)> Inputs { get; } = new(capacity);

    /// <summary>The batch's channels, each with its records in ingress order.</summary>
    public List<ChannelWork> Channels { get; } = [];

    public int Count => Records.Count;

    /// <summary>True once <see cref="Group"/> ran: the batch is being sequenced or waits for dispatch.</summary>
    public bool IsGrouped { get; private set; }

    /// <summary>Groups the records by channel (and partition), ready to be sequenced.</summary>
    public void Group(Func<Headers?, bool> isTransient)
    {
        IsGrouped = true;
        for (var i = 0; i < Records.Count; i++)
        {
            var record = Records[i];
            Inputs.Add((record.Offset.Value, record.Message.Value ?? [], isTransient(record.Message.Headers)));
            var key = (Encoding.UTF8.GetString(record.Message.Key ?? []), record.Partition.Value);
            if (!_byChannel.TryGetValue(key, out var work))
            {
                work = new ChannelWork(key.Item1, key.Item2);
                _byChannel[key] = work;
                Channels.Add(work);
            }

            work.Records.Add(i);
        }
    }

    /// <summary>
    /// Forgets the records of partitions this instance no longer owns (revoked or lost while the
    /// batch was held): their new owner reads them again from the last committed offset.
    /// Records consumed later, after a partition came back, are not in this batch.
    /// </summary>
    public void Drop(IReadOnlyCollection<int> partitions)
    {
        foreach (var partition in partitions)
        {
            if (Records.Exists(r => r.Partition.Value == partition))
            {
                _dropped.Add(partition);
            }
        }
    }

    /// <summary>
    /// Lets go of the records of partitions this instance no longer owns: removed from a batch
    /// still being read, marked dropped in one already grouped (its seqs are being assigned).
    /// </summary>
    public void Forget(IReadOnlyCollection<int> partitions)
    {
        if (IsGrouped)
        {
            Drop(partitions);
        }
        else
        {
            Remove(partitions);
        }
    }

    /// <summary>Removes the records of <paramref name="partitions"/> from a batch still being read (not grouped yet).</summary>
    public void Remove(IReadOnlyCollection<int> partitions) => Records.RemoveAll(r => partitions.Contains(r.Partition.Value));

    /// <summary>True when the record at <paramref name="index"/> belongs to a partition that was dropped.</summary>
    public bool IsDropped(int index) => _dropped.Count > 0 && _dropped.Contains(Records[index].Partition.Value);

    /// <summary>The first offset this batch holds of each partition it was not dropped from.</summary>
    public IEnumerable<(int Partition, long Offset)> FirstOffsets()
    {
        var seen = new HashSet<int>();
        foreach (var record in Records)
        {
            var partition = record.Partition.Value;
            if (!_dropped.Contains(partition) && seen.Add(partition))
            {
                yield return (partition, record.Offset.Value);
            }
        }
    }

    /// <summary>Node-topic deliveries of a sequenced batch: each record times its channel's target nodes.</summary>
    public long Deliveries()
    {
        long deliveries = 0;
        foreach (var work in Channels)
        {
            deliveries += (long)work.Records.Count * work.Targets.Length;
        }

        return deliveries;
    }

    /// <summary>For each record in ingress order: its channel's work and its position in it.</summary>
    public (ChannelWork Work, int Position)[] ByRecord()
    {
        var byRecord = new (ChannelWork Work, int Position)[Records.Count];
        foreach (var work in Channels)
        {
            for (var j = 0; j < work.Records.Count; j++)
            {
                byRecord[work.Records[j]] = (work, j);
            }
        }

        return byRecord;
    }

    public void Clear()
    {
        Records.Clear();
        Inputs.Clear();
        Channels.Clear();
        _byChannel.Clear();
        _dropped.Clear();
        IsGrouped = false;
    }
}
